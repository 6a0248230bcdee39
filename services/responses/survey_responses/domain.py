"""Pure rules of the survey page: can this invitation be answered now, and with what."""

from __future__ import annotations

from collections.abc import Mapping
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
