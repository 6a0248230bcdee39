"""Every JSON error of every service is a Problem Details (RFC 9457), whoever wrote it: FastAPI's
handlers, a route's own JSONResponse (its French `message` kept), the body cap, an unknown path,
an unexpected exception. HTML pages and successes pass untouched; the OpenAPI says so too."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from plumbing.problems import MEDIA_TYPE
from plumbing.runtime import service_app
from plumbing.settings import ServiceSettings


class Contact(BaseModel):
    site_id: str
    count: int


async def _no_setup(runtime: object, app: FastAPI) -> None:  # the lifespan does not run here
    return None


def _app() -> FastAPI:
    settings = ServiceSettings(max_request_body_bytes=1024)
    app = service_app(settings=settings, service="t", schema="t", title="t", setup=_no_setup)

    @app.post("/v1/contacts", status_code=201)
    async def create(contact: Contact, limit: Annotated[int, Query(le=10)] = 1) -> Contact:
        return contact

    @app.get("/v1/sites/{site_id}")
    async def site(site_id: str) -> dict[str, str]:
        if site_id == "inconnu":
            raise HTTPException(404, "site inconnu")
        if site_id == "occupe":
            body = {"error": "too_many_requests", "message": "Merci de patienter une minute."}
            return JSONResponse(body, 429, headers={"Retry-After": "60"})  # type: ignore[return-value]
        if site_id == "bug":
            raise RuntimeError("secret-contact-ada@example.org")
        return {"site_id": site_id}

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>Page introuvable</p>", 404)

    return app


async def _call(method: str, path: str, **options: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **options)  # type: ignore[arg-type]


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == MEDIA_TYPE
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and isinstance(body["title"], str)
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == httpx.URL(str(response.request.url)).path
    assert int(response.headers["content-length"]) == len(response.content)
    return body


async def test_an_http_exception_is_a_problem_keeping_its_detail():
    body = _assert_problem(await _call("GET", "/v1/sites/inconnu?x=1"), 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "site inconnu",
        "instance": "/v1/sites/inconnu",  # the path, never the query
    }


async def test_a_validation_error_lists_each_reason_without_echoing_the_input():
    response = await _call(
        "POST", "/v1/contacts?limit=99", json={"site_id": "s", "count": "ada@example.org"}
    )
    body = _assert_problem(response, 422)
    assert body["title"] == "Unprocessable Content" or body["title"] == "Unprocessable Entity"
    assert "La requête n'a pas la forme attendue (2 erreurs)" in str(body["detail"])
    errors = body["errors"]
    assert isinstance(errors, list) and len(errors) == 2
    by_location = {error["location"]: error for error in errors}
    assert by_location["body"]["pointer"] == "#/count"
    assert by_location["query"]["name"] == "limit"
    assert all(error["detail"] for error in errors)
    assert "ada@example.org" not in response.text


async def test_a_routes_own_error_keeps_its_french_message_code_and_headers():
    response = await _call("GET", "/v1/sites/occupe")
    body = _assert_problem(response, 429)
    assert body["type"] == "urn:fr-enquetes:problem:too_many_requests"
    assert body["message"] == body["detail"] == "Merci de patienter une minute."
    assert body["error"] == "too_many_requests"
    assert response.headers["retry-after"] == "60"


async def test_an_unknown_path_a_wrong_method_and_a_big_body_are_problems():
    _assert_problem(await _call("GET", "/nulle-part"), 404)
    _assert_problem(await _call("DELETE", "/v1/contacts"), 405)
    big = _assert_problem(await _call("POST", "/v1/contacts", content=b"x" * 2000), 413)
    assert "trop volumineuse" in str(big["detail"])


async def test_an_unexpected_error_is_a_500_problem_that_says_nothing_of_it():
    response = await _call("GET", "/v1/sites/bug")
    body = _assert_problem(response, 500)
    assert body["error"] == "internal"
    assert "ada@example.org" not in response.text and "RuntimeError" not in response.text


async def test_html_pages_and_successes_pass_untouched():
    page = await _call("GET", "/page")
    assert page.status_code == 404 and page.text == "<p>Page introuvable</p>"
    assert page.headers["content-type"].startswith("text/html")
    created = await _call("POST", "/v1/contacts", json={"site_id": "s", "count": 1})
    assert created.status_code == 201 and created.json() == {"site_id": "s", "count": 1}
    assert created.headers["content-type"] == "application/json"
    head = await _call("HEAD", "/v1/sites/inconnu")
    assert head.status_code in (404, 405) and head.content == b""


async def test_the_openapi_documents_errors_as_problem_details():
    document = (await _call("GET", "/openapi.json")).json()
    responses = document["paths"]["/v1/contacts"]["post"]["responses"]
    assert responses["422"]["content"] == {
        MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert responses["201"]["content"]["application/json"]
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["type", "title", "status"]
