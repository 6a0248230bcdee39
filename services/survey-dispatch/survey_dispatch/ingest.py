"""HTTP ingest for CRMs that cannot speak Kafka: `POST /v1/contacts`, CloudEvents HTTP binding.

Three content modes, as the binding defines them:

- structured: `Content-Type: application/cloudevents+json`, the body is one event;
- binary: `ce-specversion`, `ce-id`, `ce-source`, `ce-type`, `ce-time`... headers (values
  percent-decoded), `Content-Type: application/json`, the body is the event's `data`;
- batch: `Content-Type: application/cloudevents-batch+json`, the body is a JSON array of
  structured events.

Each event is checked exactly as the `crm.contact.closed.v1` consumer checks a record (the
contracts' `ContactClosed` envelope), then written, in one transaction with its id, to the
transactional outbox toward `crm.contact.closed.v1` (key `site_id`): the normal consumer decides
and sends. 202 means the event is durably queued (committed).

The caller holds an OpenID Connect client-credentials token with the `crm_ingest` role, the
ingest audience and a `network` claim: a CRM only sends contacts of its own network.

Every response (202 or 4xx per event) lists the events by `index` (their place in the request,
0 for the single modes) with their `id` and `result`: `queued`, `duplicate` (an id already
ingested with the same data: acknowledged, not queued again) or `rejected` with an HTTP-like
`status` (422 invalid, 403 another network, 409 id already used for other data), an English
`reason` and a French `message`. A batch is not all-or-nothing: the good events are queued
and the bad ones listed; the request answers 202 when at least one event is queued or
duplicate, else the refusals' common status (422 when they differ).

Nothing of an event's content is logged, nor echoed in a reason (pydantic messages name the
field and the rule, never the value).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from contracts.envelope import CloudEvent
from contracts.events import ContactClosed
from contracts.topics import CONTACT_CLOSED, CRM_CONTACT_CLOSED
from plumbing.auth import CRM_ROLES, AdminAuth, Principal, TokenVerifier
from plumbing.db import Connection
from plumbing.outbox import enqueue_many
from plumbing.runtime import Runtime
from survey_dispatch import repository
from survey_dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/contacts"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
MAX_BATCH_EVENTS = 1000
Mode = Literal["structured", "binary", "batch"]
Result = Literal["queued", "duplicate", "rejected"]

# CloudEvents 1.0: attribute names are lower-case letters and digits; extension values are
# scalars (string, integer, boolean). No object or array may ride along the envelope.
_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CONTEXT_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema"}
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_EXTENSION_LENGTH = 1000

# French words for pydantic's error types; anything else is « valeur non valide ».
_FRENCH: dict[str, str] = {
    "missing": "champ obligatoire absent",
    "extra_forbidden": "champ inconnu",
    "string_type": "texte attendu",
    "string_too_short": "texte vide ou trop court",
    "string_too_long": "texte trop long",
    "string_pattern_mismatch": "caractères non acceptés (caractères de contrôle ou interdits)",
    "literal_error": "valeur non prévue",
    "enum": "valeur hors de la liste prévue",
    "bool_type": "booléen attendu (true ou false)",
    "bool_parsing": "booléen attendu (true ou false)",
    "int_type": "nombre entier attendu",
    "datetime_type": "date et heure attendues (ISO 8601)",
    "datetime_parsing": "date et heure non valides (ISO 8601 attendu)",
    "datetime_from_date_parsing": "date et heure non valides (ISO 8601 attendu)",
    "timezone_aware": "date et heure sans décalage horaire (par exemple +02:00)",
    "model_type": "objet JSON attendu",
    "model_attributes_type": "objet JSON attendu",
    "dict_type": "objet JSON attendu",
}


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    index: int
    id: str | None
    result: Result
    refusal: Refusal | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "id": self.id, "result": self.result}
        if self.refusal is not None:
            body |= {
                "status": self.refusal.status,
                "reason": self.refusal.reason,
                "message": self.refusal.message,
            }
        return body


def _request_error(status: int, english: str, french: str) -> HTTPException:
    return HTTPException(status, f"{french} / {english}")


# --------------------------------------------------------------------------- pure parsing


def candidates(
    content_type: str, headers: Mapping[str, str], body: bytes
) -> tuple[Mode, list[object]]:
    """The request's events before validation (dicts, or anything a batch held), and its mode.
    Raises HTTPException (400, 415) when the request as a whole cannot be read."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == BATCH:
        parsed = _json(body)
        if not isinstance(parsed, list):
            raise _request_error(
                400, "a batch is a JSON array of events", "un lot est un tableau JSON d'événements"
            )
        if not parsed:
            raise _request_error(400, "empty batch", "lot vide : aucun événement")
        if len(parsed) > MAX_BATCH_EVENTS:
            raise _request_error(
                413,
                f"at most {MAX_BATCH_EVENTS} events in a batch",
                f"au plus {MAX_BATCH_EVENTS} événements par lot",
            )
        return "batch", list(parsed)
    if media_type == STRUCTURED:
        return "structured", [_json(body)]
    if "ce-specversion" in headers:
        if media_type not in (JSON, ""):
            raise _request_error(
                415,
                f"binary mode data must be {JSON}",
                f"en mode binaire, les données doivent être en {JSON}",
            )
        attributes: dict[str, object] = {
            name.removeprefix("ce-"): unquote(value)
            for name, value in headers.items()
            if name.startswith("ce-")
        }
        attributes["datacontenttype"] = JSON
        attributes["data"] = _json(body)
        return "binary", [attributes]
    raise _request_error(
        415,
        f"send {STRUCTURED}, {BATCH}, or {JSON} with ce-* headers (binary mode)",
        f"envoyez {STRUCTURED}, {BATCH}, ou {JSON} avec les en-têtes ce-* (mode binaire)",
    )


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except UnicodeDecodeError as error:
        raise _request_error(400, "body is not UTF-8", "le corps n'est pas en UTF-8") from error
    except RecursionError as error:
        raise _request_error(
            400, "body is nested too deeply", "le corps est imbriqué trop profondément"
        ) from error
    except json.JSONDecodeError as error:
        raise _request_error(
            400,
            f"body is not JSON: {error.msg} (line {error.lineno}, column {error.colno})",
            f"le corps n'est pas du JSON valide (ligne {error.lineno}, colonne {error.colno})",
        ) from error


def validate(candidate: object, *, network: str) -> CloudEvent[ContactClosed] | Refusal:
    """The contact-closed event, checked as the topic's consumer checks it, or why not."""
    if not isinstance(candidate, dict):
        return Refusal(422, "an event is a JSON object", "un événement est un objet JSON")
    kind = candidate.get("type")
    if kind != CONTACT_CLOSED.type:
        return Refusal(
            422,
            f"type: expected {CONTACT_CLOSED.type}",
            f"type : {CONTACT_CLOSED.type} attendu",
        )
    refusal = _envelope_refusal(candidate)
    if refusal is not None:
        return refusal
    try:
        event: CloudEvent[ContactClosed] = CONTACT_CLOSED.envelope.model_validate(candidate)
    except ValidationError as error:
        return _invalid(error)
    if event.data.network != network:
        return Refusal(
            403,
            f"data.network: this client may only send contacts of network {network}",
            f"data.network : ce client ne peut envoyer que des contacts du réseau {network}",
        )
    return event


def _envelope_refusal(candidate: dict[str, Any]) -> Refusal | None:
    """What the envelope model lets through but an HTTP ingest must not queue: an id the inbox
    could not store, extension attributes that are not CloudEvents attributes."""
    event_id = candidate.get("id")
    if isinstance(event_id, str) and _CONTROL.search(event_id):
        return Refusal(
            422, "id: control characters are not allowed", "id : caractères de contrôle refusés"
        )
    for name, value in candidate.items():
        if name == "data" or name in _CONTEXT_ATTRIBUTES:
            continue
        if not isinstance(name, str) or not _ATTRIBUTE_NAME.match(name):
            return Refusal(
                422,
                "extension attribute names are 1 to 20 lower-case letters or digits",
                "les noms d'attributs d'extension ont 1 à 20 lettres minuscules ou chiffres",
            )
        scalar = isinstance(value, (str, bool, int)) and not isinstance(value, float)
        if not scalar or (isinstance(value, str) and len(value) > MAX_EXTENSION_LENGTH):
            return Refusal(
                422,
                f"{name}: an extension attribute is a string (at most {MAX_EXTENSION_LENGTH} "
                "characters), an integer or a boolean",
                f"{name} : un attribut d'extension est un texte (au plus {MAX_EXTENSION_LENGTH} "
                "caractères), un entier ou un booléen",
            )
    return None


def _invalid(error: ValidationError) -> Refusal:
    english, french = [], []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        location = ".".join(str(part) for part in item.get("loc", ())) or "(event)"
        english.append(f"{location}: {item.get('msg')}")
        french.append(f"{location} : {_FRENCH.get(item.get('type', ''), 'valeur non valide')}")
    return Refusal(422, "; ".join(english), "; ".join(french))


def digest(event: CloudEvent[ContactClosed], key: bytes) -> str:
    """A keyed HMAC of the event's data: tells a repeat from another event under the same id,
    without keeping anything a contact point could be read back from."""
    canonical = json.dumps(
        event.data.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
    )
    return hmac.new(key, b"ingest:" + canonical.encode(), hashlib.sha256).hexdigest()


def answer_status(outcomes: Sequence[Outcome]) -> int:
    if any(outcome.refusal is None for outcome in outcomes):
        return 202
    statuses = {outcome.refusal.status for outcome in outcomes if outcome.refusal is not None}
    return statuses.pop() if len(statuses) == 1 else 422


# --------------------------------------------------------------------------- the route


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "dispatch_ingest_events_total",
            "Events received on POST /v1/contacts, by content mode and result",
            ["mode", "result"],
            registry=registry,
        )


class Ingest:
    def __init__(
        self, *, settings: DispatchSettings, runtime: Runtime, metrics: IngestMetrics
    ) -> None:
        self.key = settings.pseudonym_key.get_secret_value().encode()
        self.runtime = runtime
        self.metrics = metrics

    async def receive(
        self, principal: Principal, content_type: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if principal.network is None:
            raise _request_error(
                403, "the token has no network claim", "le jeton ne nomme aucun réseau (network)"
            )
        mode, found = candidates(content_type, headers, body)
        outcomes: dict[int, Outcome] = {}
        valid: list[tuple[int, CloudEvent[ContactClosed]]] = []
        for index, candidate in enumerate(found):
            checked = validate(candidate, network=principal.network)
            if isinstance(checked, Refusal):
                outcomes[index] = Outcome(index, _id_of(candidate), "rejected", checked)
            else:
                valid.append((index, checked))
        if valid:
            async with self.runtime.db_pool.acquire() as conn, conn.transaction():
                outcomes |= await self._queue(conn, principal.network, valid)
        ordered = [outcomes[index] for index in range(len(found))]
        counts = {result: 0 for result in ("queued", "duplicate", "rejected")}
        for outcome in ordered:
            counts[outcome.result] += 1
            self.metrics.events.labels(mode, outcome.result).inc()
        log.info(
            "contacts ingested",
            extra={"client": principal.subject, "mode": mode, **counts},
        )
        body_out = {
            "accepted": counts["queued"],
            "duplicates": counts["duplicate"],
            "rejected": counts["rejected"],
            "events": [outcome.as_json() for outcome in ordered],
        }
        status = answer_status(ordered)
        if status != 202:  # nothing queued: a Problem Details answer (the middleware adds type...)
            body_out |= _problem(status, mode, ordered)
        return status, body_out

    async def _queue(
        self, conn: Connection, network: str, valid: list[tuple[int, CloudEvent[ContactClosed]]]
    ) -> dict[int, Outcome]:
        digests = {index: digest(event, self.key) for index, event in valid}
        first: dict[str, int] = {}  # an id repeated within the request counts once
        for index, event in valid:
            first.setdefault(event.id, index)
        new_ids = await repository.claim_ingested(
            conn, rows=[(event_id, network, digests[index]) for event_id, index in first.items()]
        )
        stored = await repository.ingested_digests(
            conn, event_ids=[event_id for event_id in first if event_id not in new_ids]
        )
        outcomes: dict[int, Outcome] = {}
        rows = []
        for index, event in valid:
            known = digests[first[event.id]] if event.id in new_ids else stored.get(event.id)
            if known != digests[index]:
                outcomes[index] = Outcome(index, event.id, "rejected", _CONFLICT)
            elif event.id in new_ids and first[event.id] == index:
                outcomes[index] = Outcome(index, event.id, "queued")
                rows.append((CRM_CONTACT_CLOSED.name, event.data.site_id, event))
            else:
                outcomes[index] = Outcome(index, event.id, "duplicate")
        await enqueue_many(conn, rows)
        return outcomes


_PROBLEM_CODES = {403: "wrong_network", 409: "event_id_reused", 422: "invalid_events"}


def _problem(status: int, mode: Mode, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    count = len(outcomes)
    return {
        "error": _PROBLEM_CODES.get(status, "invalid_events"),
        "message": f"Aucun événement accepté : {count} refusé{'s' if count > 1 else ''}.",
        "detail": f"Aucun événement accepté : {count} refusé{'s' if count > 1 else ''}. / "
        f"No event accepted: {count} rejected.",
        "errors": [
            {
                "detail": outcome.refusal.reason,
                "pointer": f"#/{outcome.index}" if mode == "batch" else "#",
            }
            for outcome in outcomes
            if outcome.refusal is not None
        ],
    }


_CONFLICT = Refusal(
    409,
    "id: already used for an event with other data (a new event needs a new id)",
    "id : déjà utilisé pour un événement aux données différentes (un nouvel événement "
    "demande un nouvel id)",
)


def _id_of(candidate: object) -> str | None:
    found = candidate.get("id") if isinstance(candidate, dict) else None
    return found[:200] if isinstance(found, str) else None


_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": f"A CloudEvents 1.0 envelope of type {CONTACT_CLOSED.type} whose `data` is "
    "a ContactClosed (contracts/schemas/).",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "source": {"type": "string", "minLength": 1},
        "type": {"const": CONTACT_CLOSED.type},
        "time": {"type": "string", "format": "date-time"},
        "subject": {"type": "string"},
        "data": {"type": "object"},
    },
}
_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["index", "id", "result"],
    "properties": {
        "index": {"type": "integer"},
        "id": {"type": ["string", "null"]},
        "result": {"enum": ["queued", "duplicate", "rejected"]},
        "status": {"type": "integer", "description": "rejected: 422, 403 or 409"},
        "reason": {"type": "string", "description": "rejected: why, in English"},
        "message": {"type": "string", "description": "rejected: why, in French"},
    },
}
_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["accepted", "duplicates", "rejected", "events"],
    "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {"type": "integer"},
        "events": {"type": "array", "items": _OUTCOME_SCHEMA},
    },
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Structured mode (one event), batch mode (an array of events), or binary "
        "mode (the event's `data` as application/json, its attributes in ce-* headers).",
        "content": {
            STRUCTURED: {"schema": _EVENT_SCHEMA},
            BATCH: {"schema": {"type": "array", "minItems": 1, "items": _EVENT_SCHEMA}},
            JSON: {"schema": {"type": "object", "description": "binary mode: the ContactClosed"}},
        },
    },
    "responses": {
        "202": {
            "description": "At least one event queued or duplicate; rejected ones are listed.",
            "content": {JSON: {"schema": _ANSWER_SCHEMA}},
        },
        "403": {"description": "Every event of another network, or a token without network."},
        "409": {"description": "Every event's id already used for other data."},
        "422": {"description": "No event accepted; each one's reason in `events`."},
        "413": {"description": "Body above MAX_REQUEST_BODY_BYTES, or above 1000 events."},
        "415": {"description": "Not one of the three CloudEvents content modes."},
    },
}


def new_ingest_auth(settings: DispatchSettings) -> AdminAuth:
    """Client-credentials tokens of the ingest audience holding the `crm_ingest` role."""
    return AdminAuth(
        TokenVerifier.from_settings(settings, audience=settings.ingest_audience, roles=CRM_ROLES)
    )


async def _crm(request: Request) -> Principal:
    auth: AdminAuth = request.app.state.ingest_auth
    return await auth(request)


def install_ingest_routes(app: FastAPI, runtime: Runtime, settings: DispatchSettings) -> None:
    app.state.ingest_auth = new_ingest_auth(settings)
    ingest = Ingest(settings=settings, runtime=runtime, metrics=IngestMetrics(runtime.registry))
    router = APIRouter(tags=["ingest"])

    @router.post(
        INGEST_PATH,
        status_code=202,
        summary="Closed contacts from a CRM (CloudEvents HTTP binding: structured, binary, batch)",
        description="See services/survey-dispatch/README.md. Bearer token: client credentials "
        "with the crm_ingest role and the CRM's network claim.",
        openapi_extra=_OPENAPI,
        response_class=JSONResponse,
    )
    async def post_contacts(
        request: Request, principal: Annotated[Principal, Depends(_crm)]
    ) -> JSONResponse:
        body = await request.body()
        status, answer = await ingest.receive(
            principal, request.headers.get("content-type", ""), request.headers, body
        )
        return JSONResponse(answer, status_code=status)

    app.include_router(router)
