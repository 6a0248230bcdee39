"""The open-data CSV keeps the Table Schema it publishes (the format French open-data portals
validate, schema.data.gouv.fr): checked against the real CSV the running service serves.

`frictionless` is not a dependency: the check below reads the schema's fields and applies the
Table Schema rules this schema uses (types string, number, integer, date, datetime, boolean with
true/false values; constraints required, pattern, enum, minimum, maximum, maxLength; missing
values; primary key)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from publication import domain

STATIC = Path(__file__).resolve().parents[1] / "publication" / "static"
SCHEMA_PATH = STATIC / "export-indicateurs.schema.json"
SCHEMA_URL = "/static/publication/export-indicateurs.schema.json"
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
INTEGER = re.compile(r"[+-]?\d+")


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def cast(field: dict[str, Any], cell: str) -> Any:
    """The cell's value under the field's type, or ValueError."""
    kind = field["type"]
    if kind == "string":
        return cell
    if kind == "number":
        if not NUMBER.fullmatch(cell):
            raise ValueError(f"not a number: {cell!r}")
        return float(cell)
    if kind == "integer":
        if not INTEGER.fullmatch(cell):
            raise ValueError(f"not an integer: {cell!r}")
        return int(cell)
    if kind == "date":
        return date.fromisoformat(cell) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cell) else _bad(cell)
    if kind == "datetime":
        moment = datetime.fromisoformat(cell)
        if moment.tzinfo is None:
            raise ValueError(f"datetime without a time zone: {cell!r}")
        return moment
    if kind == "boolean":
        if cell in field.get("trueValues", ["true"]):
            return True
        if cell in field.get("falseValues", ["false"]):
            return False
        raise ValueError(f"not a boolean: {cell!r}")
    raise AssertionError(f"type {kind} is not checked here: extend `cast`")


def _bad(cell: str) -> Any:
    raise ValueError(f"not an ISO date: {cell!r}")


def table_errors(schema: dict[str, Any], text: str) -> list[str]:
    """Every way `text` (a `;` separated CSV) breaks the Table Schema `schema`."""
    errors: list[str] = []
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    fields = schema["fields"]
    names = [field["name"] for field in fields]
    if not rows or rows[0] != names:
        return [f"header {rows[0] if rows else None} is not {names}"]
    missing = set(schema.get("missingValues", [""]))
    keys: set[tuple[str, ...]] = set()
    key_columns = [names.index(name) for name in schema.get("primaryKey", [])]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(fields):
            errors.append(f"line {number}: {len(row)} cells, {len(fields)} expected")
            continue
        for field, cell in zip(fields, row, strict=True):
            where = f"line {number}, {field['name']}"
            rules = field.get("constraints", {})
            if cell in missing:
                if rules.get("required"):
                    errors.append(f"{where}: required, empty")
                continue
            try:
                value = cast(field, cell)
            except ValueError as error:
                errors.append(f"{where}: {error}")
                continue
            if "pattern" in rules and not re.fullmatch(rules["pattern"], cell):
                errors.append(f"{where}: {cell!r} does not match {rules['pattern']}")
            if "enum" in rules and cell not in rules["enum"]:
                errors.append(f"{where}: {cell!r} not in {rules['enum']}")
            if "maxLength" in rules and len(cell) > rules["maxLength"]:
                errors.append(f"{where}: longer than {rules['maxLength']}")
            if "minimum" in rules and value < rules["minimum"]:
                errors.append(f"{where}: {value} below {rules['minimum']}")
            if "maximum" in rules and value > rules["maximum"]:
                errors.append(f"{where}: {value} above {rules['maximum']}")
        key = tuple(row[index] for index in key_columns)
        if key_columns and key in keys:
            errors.append(f"line {number}: primary key {key} repeated")
        keys.add(key)
    return errors


def test_the_table_schema_describes_every_open_data_column_in_order():
    schema = load_schema()
    assert [field["name"] for field in schema["fields"]] == list(domain.OPEN_DATA_COLUMNS)
    for field in schema["fields"]:
        assert field["title"] and field["description"], field["name"]  # French, for the portal
        assert not table_errors({"fields": [field]}, f"{field['name']}\n{field['example']}\n")


def test_the_table_schema_check_refuses_a_broken_csv():
    """The check is not vacuous: each kind of breakage is named."""
    schema = load_schema()
    good = dict.fromkeys(domain.OPEN_DATA_COLUMNS, "")
    good.update(reseau="urssaf", id_structure="s1", id_indicateur="nps", indicateur="NPS",
                type_indicateur="satisfaction", periode="rolling_90d", date_debut="2026-01-01",
                date_fin="2026-03-31", statut="publie", valeur="-12.5", nombre_reponses="40",
                provisoire="non", date_mise_a_jour="2026-04-01T08:00:00+00:00")  # fmt: skip

    def csv_of(*rows: dict[str, str]) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=domain.OPEN_DATA_COLUMNS, delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    assert table_errors(schema, csv_of(good)) == []
    for column, cell, reason in [
        ("valeur", "42,5", "not a number"),
        ("valeur", "140", "above 100"),
        ("nombre_reponses", "-1", "below 0"),
        ("statut", "cache", "not in"),
        ("date_fin", "31/03/2026", "not an ISO date"),
        ("provisoire", "true", "not a boolean"),
        ("reseau", "", "required"),
        ("date_mise_a_jour", "2026-04-01T08:00:00", "without a time zone"),
    ]:
        errors = table_errors(schema, csv_of({**good, column: cell}))
        assert len(errors) == 1 and reason in errors[0], (column, errors)
    assert "repeated" in table_errors(schema, csv_of(good, good))[0]


@pytest.mark.integration
async def test_the_served_open_data_csv_matches_its_published_table_schema(
    publication, send, make_event, feed_when
):
    sites = ["schema-negatif", "schema-sous-le-seuil"]
    await send(
        make_event(sites[0], {"nps": (-12.5, 120), "satisfaction": (81.25, 118),
                              "satisfaction_mean": (7.5, 118)},
                   previous={"nps": (3.0, 90)}, network="schema",
                   site_name="=Accueil « test » ; à Montreuil"),
        make_event(sites[1], {"nps": (40.0, 12), "ces": (None, 0)}, network="schema"),
    )  # fmt: skip
    for site in sites:
        await feed_when(publication.url, site, lambda body: True, timeout=60)
    schema = load_schema()
    async with httpx.AsyncClient(base_url=publication.url) as client:
        served = await client.get(SCHEMA_URL)
        exported = await client.get(
            "/v1/open-data/export-indicateurs.csv", params={"network": "schema"}
        )
    assert served.status_code == 200 and served.json() == schema  # published beside the data
    assert exported.status_code == 200
    rows = exported.text.splitlines()
    assert len(rows) > 5 and any("en_cours_de_collecte" in row for row in rows)
    assert any(";-12.5;" in row for row in rows)
    assert table_errors(schema, exported.text) == []
