"""Trace context in CloudEvents: validation of the envelope's attributes, and propagation through
the outbox's stamping, the consumer's spans and HTTP server spans (real OpenTelemetry SDK,
spans kept in its in-memory exporter)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from contracts.envelope import CloudEvent, InvalidEvent, decode, encode
from plumbing.tracing import ServerSpans, Tracing, carried, span_context, stamped, traceparent_of

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Data(BaseModel):
    n: int = 1


def event(**attributes: Any) -> CloudEvent[Data]:
    return CloudEvent[Data](
        id=attributes.pop("id", "e-1"), source="/test", type="fr.enquetes.test.v1",
        time=datetime(2026, 1, 1, tzinfo=UTC), data=Data(), **attributes,
    )  # fmt: skip


def recording() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


# ----------------------------------------------------------------------- the envelope


def test_traceparent_and_tracestate_travel_in_the_structured_event() -> None:
    sent = event(traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")
    received = decode(CloudEvent[Data], encode(sent))
    assert received.traceparent == TRACEPARENT
    assert received.tracestate == sent.tracestate


def test_traceparent_in_binary_mode_headers_is_read() -> None:
    headers = [
        ("ce_specversion", b"1.0"), ("ce_id", b"e-2"), ("ce_source", b"/crm"),
        ("ce_type", b"fr.enquetes.test.v1"), ("ce_time", b"2026-01-01T00:00:00Z"),
        ("ce_traceparent", TRACEPARENT.encode()),
    ]  # fmt: skip
    assert decode(CloudEvent[Data], b'{"n": 2}', headers).traceparent == TRACEPARENT


def test_an_event_without_trace_context_stays_valid_and_says_nothing_of_it() -> None:
    assert b"trace" not in encode(event())


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-traceparent",
        TRACEPARENT.upper(),
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"01-{TRACE}-00f067aa0ba902b7-01",  # a version this contract does not know
        TRACEPARENT + "\n",
        TRACEPARENT[:-1] + "\x00",
        TRACEPARENT + "-extra",
    ],
)
def test_a_malformed_traceparent_makes_the_event_invalid(bad: str) -> None:
    with pytest.raises(ValidationError):
        event(traceparent=bad)
    raw = encode(event()).replace(b'"data"', f'"traceparent":{bad!r},"data"'.encode(), 1)
    raw = raw.replace(b"'", b'"')
    with pytest.raises(InvalidEvent):
        decode(CloudEvent[Data], raw)


@pytest.mark.parametrize(
    "bad", ["novalue", "a=b\tc", "a=b\r\nx=y", "UPPER=1", "a=b,c", "a=" + "x" * 600, "=v"]
)
def test_a_malformed_tracestate_makes_the_event_invalid(bad: str) -> None:
    with pytest.raises(ValidationError):
        event(traceparent=TRACEPARENT, tracestate=bad)


def test_tracestate_of_32_members_is_valid_and_33_is_not() -> None:
    members = [f"k{i}=v" for i in range(33)]
    event(traceparent=TRACEPARENT, tracestate=",".join(members[:32]))
    with pytest.raises(ValidationError):
        event(traceparent=TRACEPARENT, tracestate=",".join(members))


# ----------------------------------------------------------------------- propagation


def test_disabled_without_an_endpoint_and_enabled_with_one() -> None:
    assert not Tracing.from_settings(service="s", endpoint=None, traces_endpoint=None).enabled
    tracing = Tracing.from_settings(
        service="s", endpoint="http://127.0.0.1:9/", traces_endpoint=None
    )
    try:
        assert tracing.enabled
    finally:
        tracing.shutdown()


def test_an_event_built_outside_any_span_carries_no_context() -> None:
    assert stamped(event()).traceparent is None


def test_an_event_built_in_a_span_carries_that_span_as_parent() -> None:
    tracing, exporter = recording()
    with tracing.span("work"):
        out = stamped(event())
    (span,) = exporter.get_finished_spans()
    assert out.traceparent == traceparent_of(span.context)
    assert stamped(event(traceparent=OTHER)).traceparent == OTHER  # an existing one is kept


def test_the_consumed_event_is_the_parent_of_its_span_and_of_what_it_emits() -> None:
    tracing, exporter = recording()
    incoming = event(traceparent=TRACEPARENT, subject="site-1")
    with tracing.consume("topic.v1", incoming):
        emitted = stamped(event(id="e-2"))
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TRACE
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes is not None and span.attributes["site.id"] == "site-1"
    assert emitted.traceparent == traceparent_of(span.context)


def test_without_a_collector_the_context_is_still_passed_on() -> None:
    tracing = Tracing()
    with tracing.consume("topic.v1", event(traceparent=TRACEPARENT)):
        assert stamped(event(id="e-2")).traceparent == TRACEPARENT
    with tracing.consume_batch("topic.v1", [event(), event(id="e-3", traceparent=TRACEPARENT)]):
        assert stamped(event(id="e-4")).traceparent == TRACEPARENT


def test_a_batch_span_continues_the_first_traced_event_and_links_the_others() -> None:
    tracing, exporter = recording()
    batch = [
        event(id="a"),
        event(id="b", traceparent=TRACEPARENT),
        event(id="c", traceparent=OTHER),
    ]
    with tracing.consume_batch("topic.v1", batch):
        first = carried(batch[1], event(id="x"))
        second = carried(batch[2], event(id="y"))
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TRACE
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [OTHER[3:35]]
    assert span.attributes is not None and span.attributes["messaging.batch.message_count"] == 3
    # each emitted event continues the trace of the event it comes from
    assert first.traceparent == traceparent_of(span.context)
    assert second.traceparent == OTHER


def test_a_batch_of_duplicates_only_makes_no_span() -> None:
    tracing, exporter = recording()
    with tracing.consume_batch("topic.v1", []):
        pass
    assert exporter.get_finished_spans() == ()


def test_span_context_refuses_what_is_not_a_traceparent() -> None:
    assert span_context("garbage") is None
    assert span_context(None) is None
    parsed = span_context(TRACEPARENT, "congo=t61rcWkgMzE")
    assert parsed is not None and parsed.is_remote and parsed.trace_state["congo"] == "t61rcWkgMzE"


async def test_a_request_gets_a_server_span_named_by_its_route_never_its_path() -> None:
    tracing, exporter = recording()
    app = FastAPI()

    @app.get("/s/{token}")
    async def page(token: str) -> dict[str, str]:
        return {"ok": "yes"}

    traced = ServerSpans(app, tracing=tracing)
    transport = httpx.ASGITransport(app=traced)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/s/secret-token-123", headers={"traceparent": TRACEPARENT})
        await client.get("/s/secret-token-456?x=1", headers={"traceparent": "bogus"})
    continued, fresh = exporter.get_finished_spans()
    assert continued.name == "GET /s/{token}"
    assert f"{continued.context.trace_id:032x}" == TRACE  # the client's trace continues
    assert f"{fresh.context.trace_id:032x}" != TRACE and fresh.parent is None
    assert continued.attributes is not None
    assert continued.attributes["http.response.status_code"] == 200
    everything = repr([(s.name, dict(s.attributes or {})) for s in (continued, fresh)])
    assert "secret-token" not in everything


def test_stopping_never_waits_long_for_a_collector_that_is_away() -> None:
    """The SDK would retry the last export for up to 30 s: longer than a SIGTERM drain."""
    tracing = Tracing.from_settings(
        service="s", endpoint=None, traces_endpoint="http://127.0.0.1:9/v1/traces"
    )
    with tracing.span("work"):
        pass
    started = time.monotonic()
    tracing.shutdown(timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_a_hostile_tracestate_header_is_dropped_without_echoing_it_in_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A phone's request may carry any `tracestate`: the parent is kept, the state dropped, and
    nothing of the header reaches a log line (OpenTelemetry's parser logged it whole)."""
    hostile = "a" * 2000 + "=x,\x00\r\nX-Injected: 1" + ",k=v" * 100
    with caplog.at_level(logging.DEBUG):
        context = span_context(TRACEPARENT, hostile)
    assert context is not None and context.trace_id == int(TRACEPARENT.split("-")[1], 16)
    assert len(context.trace_state) == 0
    assert "aaaa" not in caplog.text and "Injected" not in caplog.text
