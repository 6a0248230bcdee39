"""Pure rules of the survey page: can this invitation be answered now, and with what."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.questionnaire import Item, ItemKind, Questionnaire

MAX_TOKEN_LENGTH = 128  # real tokens are ~16 characters; longer ones are cut, never hashed whole


class LinkState(StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ANSWERED = "answered"


def link_state(
    *, found: bool, expires_at: datetime | None, answered: bool, now: datetime
) -> LinkState:
    if not found:
        return LinkState.UNKNOWN
    if answered:
        return LinkState.ANSWERED
    if expires_at is not None and now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.OPEN


@dataclass(frozen=True)
class Step:
    """What the page shows at once: one question, or a group of them (the themes)."""

    number: int
    items: tuple[Item, ...]
    group: str | None

    @property
    def required(self) -> bool:
        return any(item.required for item in self.items)


def steps(questionnaire: Questionnaire) -> list[Step]:
    """Consecutive items of the same group make one step; every other item is a step alone."""
    grouped: list[tuple[str | None, list[Item]]] = []
    for item in questionnaire.items:
        if item.group is not None and grouped and grouped[-1][0] == item.group:
            grouped[-1][1].append(item)
        else:
            grouped.append((item.group, [item]))
    return [
        Step(number=index, items=tuple(items), group=group)
        for index, (group, items) in enumerate(grouped, start=1)
    ]


def asks_recontact(questionnaire: Questionnaire) -> bool:
    """Whether the version asks the user's consent to be called back (`recontact`)."""
    return any(item.id == "recontact" for item in questionnaire.items)


def prefilled_answers(
    questionnaire: Questionnaire, invitation: Mapping[str, Any]
) -> dict[str, str]:
    """Items the CRM already told us (channel, profile, nature), editable by the user."""
    prefill = {}
    for item in questionnaire.items:
        if item.prefill and invitation.get(item.prefill):
            value = str(invitation[item.prefill])
            if item.kind is not ItemKind.CHOICE or value in {o.value for o in item.options}:
                prefill[item.id] = value
    return prefill


def clean_text(value: str) -> str:
    """Drop what PostgreSQL or UTF-8 refuse (NUL, lone surrogates) instead of failing with a 500."""
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def clean_answers(raw: Mapping[str, object]) -> dict[str, object]:
    return {
        clean_text(key): clean_text(value) if isinstance(value, str) else value
        for key, value in raw.items()
    }


def form_answers(form: Mapping[str, Any], questionnaire: Questionnaire) -> dict[str, object]:
    """Keep only the questionnaire's fields from a submitted form (drops the CSRF token etc.)."""
    known = {item.id for item in questionnaire.items}
    return clean_answers({key: value for key, value in form.items() if key in known})


def token_digest_input(token: str) -> bytes:
    return clean_text(token[:MAX_TOKEN_LENGTH]).encode()


# --- Redaction of free text -------------------------------------------------------------------
# People write their phone, e-mail, social security number or bank account in a suggestion box
# ("rappelez-moi au 06 12 34 56 78"). Free text is shown to managers: those never reach them.
# Order matters: an IBAN or a NIR holds digit runs a phone pattern could otherwise take.

_SEP = r"[ .\-\u00a0]?"  # between digit groups: space, dot, dash, no-break space, or nothing
_EMAIL = re.compile(
    r"[\w.+\-]+ ?(?:@|\(at\)|\[at\]) ?[\w\-]+(?:\.[\w\-]+)*\.[a-z]{2,}\b", re.IGNORECASE
)
# Country code, check digits, then 11 to 30 letters or digits, often in groups of four (FR: 23).
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
# NIR: sex (1, 2; 3, 4, 7, 8 for temporary numbers), year, month (01-12, 20-42 or 50-99 when
# unknown), department (2 digits or 2A/2B), commune (3), order (3), then the key (2), optional.
_NIR = re.compile(
    rf"(?<!\w)[123478]{_SEP}\d\d{_SEP}(?:0[1-9]|1[0-2]|[2-9]\d){_SEP}(?:\d\d|2[AB]){_SEP}"
    rf"\d{{3}}{_SEP}\d{{3}}(?:{_SEP}\d\d)?(?!\d)",
    re.IGNORECASE,
)
# French numbers: 0X XX XX XX XX, +33 X XX XX XX XX, +33 (0)X XX..., 0033 X XX...
_PHONE = re.compile(
    rf"(?:(?<![\d+])(?:\+|00) ?33{_SEP}(?:\(0\){_SEP}|0)?|(?<![\d+])0)"
    rf"[1-9](?:{_SEP}\d\d){{4}}(?!\d)"
)


def _iban(match: re.Match[str]) -> str:
    """An IBAN is mostly digits: "Ab12 cdef ghij" is a word game, not a bank account."""
    digits = sum(character.isdigit() for character in match[0])
    return "[IBAN]" if digits >= 10 else match[0]


_REDACTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_EMAIL, "[courriel]"),
    (_IBAN, _iban),
    (_NIR, "[numéro de sécurité sociale]"),
    (_PHONE, "[téléphone]"),
)


def redact(text: str) -> str:
    """`text` with phone numbers, e-mail addresses, NIR and IBAN replaced by a French tag."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_answers(
    questionnaire: Questionnaire, answers: dict[str, int | str]
) -> dict[str, int | str]:
    """The answers with every free-text item redacted (ratings and choice codes are codes)."""
    text_items = set(free_text_items(questionnaire))
    return {
        key: redact(value) if key in text_items and isinstance(value, str) else value
        for key, value in answers.items()
    }


def without_free_text(questionnaire: Questionnaire, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The anonymous part of answers: ratings and choice codes, no free text."""
    text_items = set(free_text_items(questionnaire))
    return {key: value for key, value in answers.items() if key not in text_items}


def free_text_items(questionnaire: Questionnaire) -> list[str]:
    return [item.id for item in questionnaire.items if item.kind is ItemKind.TEXT]


def free_text_everywhere(questionnaires: Iterable[Questionnaire]) -> list[str]:
    """Item ids that are free text in every questionnaire that has them: the keys the retention
    task may drop from any response, whatever its questionnaire version."""
    text: set[str] = set()
    other: set[str] = set()
    for questionnaire in questionnaires:
        for item in questionnaire.items:
            (text if item.kind is ItemKind.TEXT else other).add(item.id)
    return sorted(text - other)


@dataclass(frozen=True)
class Legal:
    """Who answers for the service, for the pages a French public-service form must link
    (personal data, legal notice, accessibility). Defaults: the reference network (Urssaf)."""

    controller: str = "Urssaf Caisse nationale"
    controller_address: str = "36 rue de Valmy, 93108 Montreuil Cedex"
    publication_director: str = "Le directeur de l'Urssaf Caisse nationale"
    dpo_contact: str = (
        "Délégué à la protection des données, Urssaf Caisse nationale, "
        "36 rue de Valmy, 93108 Montreuil Cedex"
    )
    host: str = "Urssaf Caisse nationale, 36 rue de Valmy, 93108 Montreuil Cedex"
    accessibility_contact: str = (
        "Urssaf Caisse nationale, service accessibilité, 36 rue de Valmy, 93108 Montreuil Cedex"
    )
    accessibility_status: str = "partiellement conforme"
    free_text_retention_days: int = 180
