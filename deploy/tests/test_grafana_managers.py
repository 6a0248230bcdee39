"""deploy/grafana/managers.py (issue #15): one Grafana organisation per manager, a datasource
logging in as the manager's role with the password scoring derives, and a board that reads only
the managers' filtered views. (Its SQL runs as a manager's role in
services/scoring/tests/test_managers.py.)"""

from __future__ import annotations

import importlib.util
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from scoring import managers as scoring_managers

GENERATOR = Path(__file__).resolve().parents[1] / "grafana" / "managers.py"
LISTING = {
    "network": "urssaf",
    "managers": [
        {"manager_id": "dupont_m", "login_role": "mgr_dupont_m", "scope": "sites",
         "sites": ["s1"], "email": "m.dupont@exemple.fr"},
        {"manager_id": "region_n", "login_role": "mgr_region_n", "scope": "network",
         "sites": [], "email": "n@exemple.fr"},
        {"manager_id": "national", "login_role": "mgr_national", "scope": "all", "sites": [],
         "email": "nat@exemple.fr"},
    ],
}  # fmt: skip


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_managers", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_manager_gets_an_organisation_a_datasource_and_the_board(tmp_path, monkeypatch):
    (tmp_path / "urssaf.json").write_text(json.dumps(LISTING))
    (tmp_path / "orgs.json").write_text(json.dumps({"dupont_m": 2, "region_n": 3}))
    monkeypatch.setenv("MANAGER_PASSWORD_KEY", "the-secret")
    out = tmp_path / "out"
    code = generator().main(["--managers", str(tmp_path / "urssaf.json"),
                             "--orgs", str(tmp_path / "orgs.json"), "--out", str(out)])  # fmt: skip
    assert code == 0
    sources = yaml.safe_load((out / "datasources" / "managers.yaml").read_text())["datasources"]
    assert [(s["orgId"], s["user"]) for s in sources] == [(2, "mgr_dupont_m"), (3, "mgr_region_n")]
    assert {s["uid"] for s in sources} == {"enquetes-manager-postgres"}
    assert sources[0]["secureJsonData"] == {"password": "${ENQUETES_MANAGER_PASSWORD_DUPONT_M}"}
    providers = yaml.safe_load((out / "dashboards" / "managers.yaml").read_text())["providers"]
    assert [p["orgId"] for p in providers] == [2, 3]
    env = (out / "managers.env").read_text().splitlines()
    expected = scoring_managers.derive_password("the-secret", "mgr_dupont_m")
    assert env[0] == f"ENQUETES_MANAGER_PASSWORD_DUPONT_M={expected}"  # the role's password
    assert stat.S_IMODE((out / "managers.env").stat().st_mode) == 0o600
    assert "the-secret" not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())

    board = (out / "enquetes-managers" / "site-weekly-manager.json").read_text()
    assert set(re.findall(r"(\w+)\.reporting_", board)) == {"scoring_managers"}
    assert set(re.findall(r'"uid": "([^"]+)"', board)) == {
        "enquetes-manager-site-weekly", "enquetes-manager-postgres"}  # fmt: skip
    assert "Verbatims de la semaine" in board


@pytest.mark.parametrize(
    ("orgs", "words"),
    [({"dupont_m": 2}, "organisation Grafana manquante pour : region_n"),
     ({"dupont_m": 2, "region_n": 2}, "une organisation par gestionnaire"),
     ({"dupont_m": 1, "region_n": 3}, "une organisation par gestionnaire")],
)  # fmt: skip
def test_managers_never_share_an_organisation(orgs, words):
    module = generator()
    with pytest.raises(ValueError, match=words):
        module.provisioning(module.read_managers([LISTING]), orgs, "k")


def test_the_key_comes_from_the_environment_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MANAGER_PASSWORD_KEY", raising=False)
    (tmp_path / "m.json").write_text(json.dumps(LISTING))
    (tmp_path / "o.json").write_text("{}")
    code = generator().main(["--managers", str(tmp_path / "m.json"), "--orgs",
                             str(tmp_path / "o.json"), "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "MANAGER_PASSWORD_KEY" in capsys.readouterr().err
