"""Pure rules of the survey page: can this invitation be answered now, and with what."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from contracts.questionnaire import ItemKind, Questionnaire


class LinkState(StrEnum):
    OPEN = "open"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ANSWERED = "answered"


def link_state(*, found: bool, expires_at: datetime | None, answered: bool, now: datetime) -> LinkState:
    if not found:
        return LinkState.UNKNOWN
    if answered:
        return LinkState.ANSWERED
    if expires_at is not None and now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.OPEN


def prefilled_answers(questionnaire: Questionnaire, invitation: Mapping[str, Any]) -> dict[str, str]:
    """Items the CRM already told us (channel, profile, nature), editable by the user."""
    prefill = {}
    for item in questionnaire.items:
        if item.prefill and invitation.get(item.prefill):
            value = str(invitation[item.prefill])
            if item.kind is not ItemKind.CHOICE or value in {o.value for o in item.options}:
                prefill[item.id] = value
    return prefill


def form_answers(form: Mapping[str, Any], questionnaire: Questionnaire) -> dict[str, object]:
    """Keep only the questionnaire's fields from a submitted form (drops the CSRF token etc.)."""
    known = {item.id for item in questionnaire.items}
    return {key: value for key, value in form.items() if key in known}
