"""One trace follows a contact through the four services: the CRM's `contact closed` event
carries a W3C traceparent, and every service, exporting by OTLP/HTTP to a small receiver run
here (the collector is a third party: a minimal real one), adds its spans to that trace, from
the invitation to the answer (from a phone, without trace context), the scoring batch and the
screen push."""

from __future__ import annotations

import gzip
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from contracts.events import SurveyChannel
from contracts.topics import CRM_CONTACT_CLOSED
from plumbing import devstack
from plumbing.crm_simulator import SITES, CrmSimulator
from plumbing.services import System, start_system
from plumbing.testing import async_wait_for, produce, survey_tokens

pytestmark = pytest.mark.e2e

SERVICES = {"survey-dispatch", "responses", "scoring", "publication"}


class Collector:
    """An OTLP/HTTP traces receiver (protobuf): keeps every span with its service's name."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.add(request)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append({
                            "service": resource.get("service.name"),
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "attributes": {a.key: str(a.value) for a in span.attributes},
                            "links": [link.trace_id.hex() for link in span.links],
                        })  # fmt: skip

    def of_trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [span for span in self.spans if span["trace_id"] == trace_id]


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    receiver = Collector()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture(scope="module")
def traced_system(
    stack: devstack.DevStack, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    # As `quick_system` (sending at once, publishing from the first response), every service
    # exporting to the receiver; a longer wait for readiness: four services importing at once
    # on a loaded machine took more than the default minute.
    running = start_system(
        stack.env(),
        tmp_path_factory.mktemp("logs"),
        extra_env={
            "PUBLIC_FLOOR": "1",
            "SENDER_POLL_SECONDS": "0.05",
            "DEFAULT_RULES": '{"delay_minutes": 0, "email_uses_sms_window": false}',
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports
            "OTEL_SERVICE_NAME": "",  # each service names itself
        },
        ready_timeout=180,
    )
    try:
        yield running
    finally:
        running.stop()


async def test_one_trace_follows_a_contact_through_the_four_services(
    stack: devstack.DevStack, traced_system: System, collector: Collector
) -> None:
    simulator = CrmSimulator(seed=16)
    site = SITES[2]
    email = "suivi.trace@exemple.fr"
    contact = simulator.contact(site=site).model_copy(
        update={"preferred_channel": SurveyChannel.EMAIL, "email": email}
    )
    trace_id = secrets.token_hex(16)
    crm_span = secrets.token_hex(8)
    event = simulator.event(contact).model_copy(
        update={"traceparent": f"00-{trace_id}-{crm_span}-01"}
    )
    await produce(stack.kafka_bootstrap_servers, CRM_CONTACT_CLOSED.name, [event])

    tokens = await async_wait_for(lambda: survey_tokens(stack.maildir), timeout=60)
    token = tokens[-1]
    async with httpx.AsyncClient(base_url=traced_system["responses"].url) as client:
        # The phone's requests carry no trace context.
        page = await async_wait_for(lambda: _page_if_known(client, token), timeout=30)
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        answer = await client.post(
            f"/s/{token}",
            data={"csrf": csrf, "satisfaction_globale": "9", "recommandation": "10",
                  "action": "submit"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    # Every span asserted below: each service exports its spans on its own, and scoring's
    # publish (started by the commit's NOTIFY) may reach the collector before the consumer's
    # span around that very batch, which ends after the offset commit.
    expected = {
        ("survey-dispatch", f"process {CRM_CONTACT_CLOSED.name}"),
        ("responses", "submit response"),
        ("scoring", "process survey.response.v1"),
        ("scoring", "publish site indicators"),
        ("publication", "push site indicators"),
    }

    def orphans(spans: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Spans whose parent is neither a span of the trace nor the CRM's own."""
        ids = {span["span_id"] for span in spans} | {crm_span}
        return [(s["service"], s["name"]) for s in spans if s["parent_id"] not in ids]

    def whole_trace() -> list[dict[str, Any]] | None:
        spans = collector.of_trace(trace_id)
        done = expected <= {(span["service"], span["name"]) for span in spans}
        # Each service exports its spans in its own batches: a child may come before its parent.
        done = done and {span["service"] for span in spans} >= SERVICES and not orphans(spans)
        return spans if done else None

    try:
        spans = await async_wait_for(whole_trace, timeout=60)
    except TimeoutError:
        spans = collector.of_trace(trace_id)
        found = sorted({(s["service"], s["name"]) for s in spans})
        pytest.fail(f"the trace never reached all four services, or a hop started its own: its "
                    f"spans {found}; those whose parent never came: {orphans(spans)}")  # fmt: skip
    # The answer continues the trace (the phone's requests carry none), through every service.
    assert expected <= {(span["service"], span["name"]) for span in spans}
    # The first span of our side is the child of the CRM's.
    dispatch = next(s for s in spans if s["name"] == f"process {CRM_CONTACT_CLOSED.name}")
    assert dispatch["parent_id"] == crm_span
    # Every parent is a span of the trace, or the CRM's own: no hop starts a trace of its own.
    assert not orphans(spans), spans
    # Privacy: no e-mail, token or user reference in any span sent anywhere.
    everything = repr(collector.spans)
    for secret in (email, token, contact.user_ref):
        assert secret not in everything


async def _page_if_known(client: httpx.AsyncClient, token: str) -> httpx.Response | None:
    response = await client.get(f"/s/{token}")
    return response if response.status_code == 200 else None
