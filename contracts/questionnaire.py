"""Questionnaires are versioned data files (`questionnaires/<version>.json`), not code."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

QUESTIONNAIRE_DIR = Path(__file__).parent / "questionnaires"
DEFAULT_VERSION = "urssaf-chaud-2024-v1"
SMS_SHORT_VERSION = "sms-court-2026-v1"

KNOWN_VERSIONS: tuple[str, ...] = (DEFAULT_VERSION, SMS_SHORT_VERSION)
"""The registry: every version a network may choose, one file each in `questionnaires/`.

A version is added here with its file and never removed (responses carry it for years). Two
versions that share an item id ask the same question on the same scale (`incompatibilities`),
so an indicator's formula applies to every version that has its items."""


def is_known(version: str) -> bool:
    return version in KNOWN_VERSIONS


def unknown_version_message(version: object) -> str:
    known = ", ".join(KNOWN_VERSIONS)
    return f"unknown questionnaire version {str(version)[:80]!r} (known: {known})"


class ItemKind(StrEnum):
    SCALE = "scale"
    CHOICE = "choice"
    TEXT = "text"


class Option(BaseModel):
    model_config = ConfigDict(frozen=True)
    value: str
    label: str


class Item(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z_]+$")]
    kind: ItemKind
    question: str
    hint: str | None = None
    required: bool = False
    group: str | None = Field(default=None, description="Items shown together, e.g. the themes.")
    scale_min: int | None = None
    scale_max: int | None = None
    min_label: str | None = None
    max_label: str | None = None
    options: tuple[Option, ...] = ()
    max_length: int = 1000
    prefill: str | None = Field(default=None, description="Contact field that pre-fills the item.")

    @model_validator(mode="after")
    def _consistent(self) -> Item:
        if self.kind is ItemKind.SCALE and (self.scale_min is None or self.scale_max is None):
            raise ValueError(f"{self.id}: a scale needs scale_min and scale_max")
        if self.kind is ItemKind.CHOICE and not self.options:
            raise ValueError(f"{self.id}: a choice needs options")
        return self

    def check(self, raw: object) -> int | str:
        """The answer as stored, or ValueError with a French message for the user."""
        if self.kind is ItemKind.SCALE:
            assert self.scale_min is not None and self.scale_max is not None
            if isinstance(raw, bool | float):  # JSON true is not a rating, nor is 7.5
                raise ValueError(f"« {self.question} » attend un nombre entier.")
            try:
                value = int(str(raw))
            except ValueError:
                raise ValueError(f"« {self.question} » attend un nombre.") from None
            if not self.scale_min <= value <= self.scale_max:
                raise ValueError(
                    f"« {self.question} » attend une note de {self.scale_min} à {self.scale_max}."
                )
            return value
        text = str(raw).strip()
        if self.kind is ItemKind.CHOICE:
            if text not in {option.value for option in self.options}:
                raise ValueError(f"« {self.question} » : choisissez une des réponses proposées.")
            return text
        if len(text) > self.max_length:
            raise ValueError(f"« {self.question} » : {self.max_length} caractères au plus.")
        return text


class Questionnaire(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    title: str
    intro: str
    items: tuple[Item, ...]

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def validate_answers(self, raw: dict[str, object], *, partial: bool) -> dict[str, int | str]:
        """Check every given answer; unless partial, require the required items.

        Raises ValueError whose args[0] is a dict {item id: French message}.
        """
        problems: dict[str, str] = {}
        answers: dict[str, int | str] = {}
        known = {item.id for item in self.items}
        for key in raw:
            if key not in known:
                problems[key] = f"Question inconnue : {key[:40]}."
        for item in self.items:
            value = raw.get(item.id)
            if value is None or (isinstance(value, str) and not value.strip()):
                if item.required and not partial:
                    problems[item.id] = f"Merci de répondre à « {item.question} »."
                continue
            try:
                answers[item.id] = item.check(value)
            except ValueError as error:
                problems[item.id] = str(error)
        if problems:
            raise ValueError(problems)
        return answers


def incompatibilities(questionnaires: Iterable[Questionnaire]) -> list[str]:
    """Why these versions could not be scored together: an item id that two versions give
    another kind, scale or set of answers. Empty when they agree wherever they overlap."""
    seen: dict[str, tuple[str, Item]] = {}
    problems = []
    for form in questionnaires:
        for item in form.items:
            if item.id not in seen:
                seen[item.id] = (form.version, item)
                continue
            version, first = seen[item.id]
            if _answer_shape(item) != _answer_shape(first):
                problems.append(f"{item.id}: {form.version} does not answer it as {version}")
    return problems


def _answer_shape(item: Item) -> tuple[object, ...]:
    values = tuple(sorted(option.value for option in item.options))
    return (item.kind, item.scale_min, item.scale_max, values)


@cache
def load(version: str = DEFAULT_VERSION) -> Questionnaire:
    if not is_known(version):
        raise KeyError(version)
    path = QUESTIONNAIRE_DIR / f"{version}.json"
    if not path.is_file():
        raise KeyError(version)
    form = Questionnaire.model_validate_json(path.read_text(encoding="utf-8"))
    if form.version != version:
        raise ValueError(f"{path.name} says it is version {form.version!r}")
    return form


def load_all() -> dict[str, Questionnaire]:
    """Every known version, by version (each file read once per process)."""
    return {version: load(version) for version in KNOWN_VERSIONS}
