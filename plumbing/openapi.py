"""Each service's OpenAPI document, committed beside it and drift-checked like the AsyncAPI one.

`python -m plumbing.openapi` rewrites `services/<service>/openapi.json` from the apps;
`python -m plumbing.openapi --check` exits 1 when a committed document drifts from its app
(`make test` runs it). The apps are built with their default settings and never started: no
database, broker or network is needed.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServiceApi:
    name: str  # the folder under services/
    package: str
    settings_class: str

    @property
    def path(self) -> Path:
        return ROOT / "services" / self.name / "openapi.json"


SERVICES = (
    ServiceApi("survey-dispatch", "survey_dispatch", "DispatchSettings"),
    ServiceApi("responses", "survey_responses", "ResponsesSettings"),
    ServiceApi("scoring", "scoring", "ScoringSettings"),
    ServiceApi("publication", "publication", "PublicationSettings"),
)


def document(service: ServiceApi) -> dict[str, Any]:
    """The OpenAPI document the service serves at /openapi.json, from its default settings."""
    settings = getattr(
        importlib.import_module(f"{service.package}.settings"), service.settings_class
    )
    app = importlib.import_module(f"{service.package}.app").create_app(settings())
    with warnings.catch_warnings():  # FastAPI warns of GET+HEAD routes sharing an operation id
        warnings.simplefilter("ignore", UserWarning)
        openapi: dict[str, Any] = app.openapi()
    return _stable(openapi)


_METHOD_ORDER = ("get", "head", "post", "put", "patch", "delete", "options")


def _stable(openapi: dict[str, Any]) -> dict[str, Any]:
    """A route serving GET and HEAD keeps its methods in a set: FastAPI lists them, and names
    their operation ids, in that set's order, which changes from one process to the next. Fixed
    here: methods in a set order, each operation id ending with its own method."""
    for path, item in openapi.get("paths", {}).items():
        ordered = {m: item[m] for m in _METHOD_ORDER if m in item}
        ordered |= {key: value for key, value in item.items() if key not in ordered}
        for method in _METHOD_ORDER:
            operation = ordered.get(method)
            if isinstance(operation, dict) and "operationId" in operation:
                base, _, suffix = operation["operationId"].rpartition("_")
                if suffix in _METHOD_ORDER and suffix != method:
                    operation["operationId"] = f"{base}_{method}"
        openapi["paths"][path] = ordered
    return openapi


def render(openapi: dict[str, Any]) -> str:
    return json.dumps(openapi, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    drifted = []
    for service in SERVICES:
        text = render(document(service))
        current = service.path.read_text(encoding="utf-8") if service.path.exists() else None
        if current == text:
            continue
        if check:
            drifted.append(str(service.path.relative_to(ROOT)))
        else:
            service.path.write_text(text, encoding="utf-8")
            print(f"wrote {service.path.relative_to(ROOT)}")
    if drifted:
        print(
            "OpenAPI documents out of date (run `uv run python -m plumbing.openapi`): "
            + ", ".join(drifted),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
