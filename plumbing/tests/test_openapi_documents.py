"""The four services' OpenAPI documents are committed and drift-checked (`make test` runs
`python -m plumbing.openapi --check`; this test says the same inside pytest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plumbing import openapi


@pytest.mark.parametrize("service", openapi.SERVICES, ids=lambda service: service.name)
def test_the_committed_openapi_document_is_the_services_own(service: openapi.ServiceApi):
    committed = service.path.read_text(encoding="utf-8")
    assert committed == openapi.render(openapi.document(service)), (
        f"{service.path} is out of date: run `uv run python -m plumbing.openapi`"
    )
    document = json.loads(committed)
    assert document["paths"], "a service with no operation?"
    assert "Problem" in document["components"]["schemas"]  # errors are RFC 9457 (issue #16)


def test_the_check_fails_on_a_drifted_document_and_the_generator_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    for service in openapi.SERVICES:
        target = tmp_path / "services" / service.name / "openapi.json"
        target.parent.mkdir(parents=True)
        shutil.copy(service.path, target)
    monkeypatch.setattr(openapi, "ROOT", tmp_path)
    scoring = next(service for service in openapi.SERVICES if service.name == "scoring")
    drifted = json.loads(scoring.path.read_text(encoding="utf-8"))
    drifted["paths"].popitem()
    scoring.path.write_text(json.dumps(drifted), encoding="utf-8")

    assert openapi.main(["--check"]) == 1
    assert "services/scoring/openapi.json" in capsys.readouterr().err
    assert openapi.main([]) == 0
    assert openapi.main(["--check"]) == 0
