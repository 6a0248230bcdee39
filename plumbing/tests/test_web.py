"""Every service refuses an oversize body before parsing it, and serves no CDN docs page."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
from fastapi import FastAPI, Request

from plumbing.runtime import service_app
from plumbing.settings import ServiceSettings
from plumbing.web import MAX_ADDRESS_LENGTH, BodyLimit, client_address


def _app(parsed: list[int]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=1024)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        parsed.append(len(body))
        return {"size": len(body)}

    return app


async def _post(app: FastAPI, content: bytes | object, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/echo", content=content, headers=headers)  # type: ignore[arg-type]


async def test_a_36_megabyte_body_is_refused_from_its_length_without_being_read():
    parsed: list[int] = []
    response = await _post(_app(parsed), b"[" + b"1," * (18 * 1024 * 1024) + b"1]")
    assert response.status_code == 413
    assert "trop volumineuse" in response.json()["detail"]
    assert parsed == []


async def test_a_chunked_body_is_refused_once_it_passes_the_cap():
    parsed: list[int] = []

    async def chunks():
        for _ in range(100):
            yield b"x" * 512

    response = await _post(_app(parsed), chunks())
    assert response.status_code == 413
    assert parsed == []


async def test_a_body_under_the_cap_goes_through():
    parsed: list[int] = []
    response = await _post(_app(parsed), b"x" * 1000)
    assert response.status_code == 200 and parsed == [1000]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_a_service_app_serves_no_documentation_page_from_a_cdn(path):
    async def setup(runtime, app):  # never called: the lifespan is not run
        raise AssertionError

    app = service_app(settings=ServiceSettings(), service="t", schema="t", title="t", setup=setup)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get(path)).status_code == 404


TRUSTED = [ipaddress.ip_network("10.42.0.0/16"), ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "address"),
    [
        # Straight from the client: its header is ignored, whatever it says.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # Through the ingress: the right-most entry the ingress appended.
        ("10.42.3.4", ["203.0.113.7"], "203.0.113.7"),
        # A client forging entries on the left cannot choose its address.
        ("10.42.3.4", ["1.1.1.1, 2.2.2.2", "203.0.113.7"], "203.0.113.7"),
        ("10.42.3.4", ["6.6.6.6, 203.0.113.7, 10.42.0.9"], "203.0.113.7"),
        ("10.42.3.4", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("10.42.3.4", ["203.0.113.7:5555"], "203.0.113.7"),
        ("10.42.3.4", [], "10.42.3.4"),
        ("10.42.3.4", ["10.42.0.9"], "10.42.3.4"),
        (None, ["203.0.113.7"], "unknown"),
    ],
)
def test_client_address_believes_forwarded_for_only_from_a_trusted_proxy(
    peer, forwarded_for, address
):
    assert client_address(peer, forwarded_for, trusted=TRUSTED) == address


def test_a_forged_address_is_cut_to_a_small_key():
    address = client_address("10.42.3.4", ["x" * 10_000], trusted=TRUSTED)
    assert len(address) <= MAX_ADDRESS_LENGTH
