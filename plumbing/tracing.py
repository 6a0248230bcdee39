"""OpenTelemetry tracing: one trace follows a contact through the four services.

The W3C `traceparent` (and `tracestate`) travel inside each CloudEvent (the CloudEvents
distributed tracing extension): an event built while a span is current carries that span's
context (`stamped`, applied by the outbox to every event it stores, so the context survives
until the relay sends it), and a consumer makes each handled event's context the parent of the
span it handles it in, so what the handler emits continues the trace.

Export is OTLP over HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set;
otherwise nothing is recorded nor exported, and an incoming context is only passed on, so a
service without a collector does not cut the trace of the others. Each service builds its own
`Tracing` in its runtime (never at import, never the global provider of the OpenTelemetry API).

Privacy: span names and attributes carry topics, event types and pseudonymous ids only (site,
contact, invitation), never an e-mail, a phone, a token or a user reference.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.envelope import CloudEvent, is_traceparent, is_tracestate

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

EventT = TypeVar("EventT", bound=CloudEvent[Any])
AttributeValue = str | int | float | bool
MAX_LINKS = 128  # a batch span links at most this many events' traces
SHUTDOWN_SECONDS = 3.0  # at most this long to export the last spans when the service stops


def traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def span_context(traceparent: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The remote span context a `traceparent` names, or None when there is none (or invalid)."""
    if not traceparent or not is_traceparent(traceparent):
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    # A header from a browser may be anything: an invalid tracestate is dropped here, never
    # handed to OpenTelemetry's parser, which logs the whole value back (2 KB, CR, LF...).
    valid = tracestate is not None and is_tracestate(tracestate)
    state = TraceState.from_header([tracestate]) if tracestate and valid else TraceState()
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16)),
        trace_state=state,
    )


def current_traceparent() -> tuple[str, str | None] | None:
    """(traceparent, tracestate or None) of the current span, None outside any trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    state = context.trace_state.to_header() if context.trace_state else ""
    return traceparent_of(context), state or None


def stamped(event: EventT) -> EventT:
    """`event` carrying the current span's context, unless it already carries one."""
    if event.traceparent is not None:
        return event
    current = current_traceparent()
    if current is None:
        return event
    traceparent, tracestate = current
    return event.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})


def continuing(source: CloudEvent[Any]) -> tuple[str | None, str | None]:
    """(traceparent, tracestate) for what is done because of `source`: the current span when it
    is in `source`'s trace (a handler's span), else `source`'s own context (one event of a batch
    whose span continues another event's trace); (None, None) when `source` has none."""
    if source.traceparent is None:
        return None, None
    current = current_traceparent()
    if current is not None and current[0][3:35] == source.traceparent[3:35]:
        return current
    return source.traceparent, source.tracestate


def stamped_all(events: Iterable[EventT]) -> list[EventT]:
    """`stamped` for many events built in one span (the current context read once)."""
    current = current_traceparent()
    if current is None:
        return list(events)
    traceparent, tracestate = current
    update = {"traceparent": traceparent, "tracestate": tracestate}
    return [event if event.traceparent else event.model_copy(update=update) for event in events]


def carried(source: CloudEvent[Any], event: EventT) -> EventT:
    """`event`, emitted because of `source`, continuing `source`'s trace (see `continuing`)."""
    if event.traceparent is not None or source.traceparent is None:
        return event
    traceparent, tracestate = continuing(source)
    return event.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})


class Tracing:
    """One service's tracer, or none: `enabled` only when an OTLP endpoint is configured."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("enquetes") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @classmethod
    def from_settings(
        cls,
        *,
        service: str,
        endpoint: str | None,
        traces_endpoint: str | None,
        service_name: str | None = None,
    ) -> Tracing:
        """OTLP/HTTP export to `traces_endpoint`, or to `endpoint` + `/v1/traces` (the standard
        OTEL_EXPORTER_OTLP_* variables); no endpoint, no tracer. Batching, headers, timeout and
        compression follow the standard OTEL_BSP_* and OTEL_EXPORTER_OTLP_* variables."""
        if traces_endpoint:
            url = traces_endpoint
        elif endpoint:
            url = endpoint.rstrip("/") + "/v1/traces"
        else:
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service_name or service}),
            shutdown_on_exit=False,  # the runtime's stop does it, within SHUTDOWN_SECONDS
        )
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        return cls(provider)

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Export what is still buffered, then stop (the service is stopping); waits at most
        `timeout`, so a collector that is away never holds a SIGTERM drain up (the SDK would
        wait up to 30 s)."""
        if self.provider is None:
            return
        stopping = threading.Thread(target=self.provider.shutdown, name="tracing", daemon=True)
        stopping.start()
        stopping.join(timeout)

    def span(
        self,
        name: str,
        *,
        parent: str | None = None,
        parent_state: str | None = None,
        links: Sequence[tuple[str | None, str | None]] = (),
        attributes: Mapping[str, AttributeValue] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Any:
        """A context manager: a span named `name`, current inside it. Its parent is the context
        `parent` names (a traceparent) if any, else the current span; `links` are (traceparent,
        tracestate) pairs of other traces it relates to. Disabled, only the parent's context is
        made current, so events emitted inside still carry it."""
        parent_context = span_context(parent, parent_state)
        if self.tracer is None:
            if parent_context is None:
                return nullcontext()
            return trace.use_span(NonRecordingSpan(parent_context), end_on_exit=False)
        context = (
            trace.set_span_in_context(NonRecordingSpan(parent_context))
            if (parent_context is not None)
            else None
        )
        span_links = [
            Link(linked)
            for traceparent, tracestate in links[:MAX_LINKS]
            if (linked := span_context(traceparent, tracestate)) is not None
        ]
        return self.tracer.start_as_current_span(
            name, context=context, kind=kind, links=span_links, attributes=attributes
        )

    def consume(self, topic: str, event: CloudEvent[Any]) -> Any:
        """The span a consumer handles one event in, child of the event's context."""
        return self.span(
            f"process {topic}",
            parent=event.traceparent,
            parent_state=event.tracestate,
            kind=SpanKind.CONSUMER,
            attributes=_event_attributes(topic, event) if self.enabled else None,
        )

    @contextmanager
    def consume_batch(self, topic: str, events: Sequence[CloudEvent[Any]]) -> Iterator[None]:
        """The span a consumer handles a batch in: child of the first traced event's context,
        linked to every traced event's (so a batch of one continues its trace, and a batch of
        many is found from each of theirs)."""
        if not events:  # every event was a duplicate: nothing handled, nothing to trace
            yield
            return
        traced = [event for event in events if event.traceparent is not None]
        if not traced:
            with self.span(f"process {topic}", kind=SpanKind.CONSUMER):
                yield
            return
        first = traced[0]
        attributes: dict[str, AttributeValue] = {}
        if self.enabled:
            attributes = {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.batch.message_count": len(events),
            }
        with self.span(
            f"process {topic}",
            parent=first.traceparent,
            parent_state=first.tracestate,
            links=[(event.traceparent, event.tracestate) for event in traced[1:]]
            if self.enabled
            else (),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            yield


def _event_attributes(topic: str, event: CloudEvent[Any]) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.message.id": event.id,
        "cloudevents.event_id": event.id,
        "cloudevents.event_type": event.type,
    }
    if event.subject:
        attributes["site.id"] = event.subject
    return attributes


class ServerSpans:
    """Pure ASGI middleware: a server span per HTTP request, named by its route template (never
    its path, where a survey link carries its secret), child of the request's `traceparent`
    header when a client sent one. Installed only when tracing is enabled."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = state = None
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":
                parent = value.decode("latin-1").strip()
            elif name == b"tracestate":
                state = value.decode("latin-1")
        method = scope["method"]
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracing.span(
            method,
            parent=parent,
            parent_state=state if parent else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        ) as span:
            try:
                await self.app(scope, receive, send_with_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
