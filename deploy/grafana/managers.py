"""Grafana provisioning for the managers (issue #15): one organisation per manager, with a
datasource that logs in as the manager's own PostgreSQL role and the site board reading the
filtered views.

    uv run python deploy/grafana/managers.py --managers urssaf.json [msa.json ...] \\
        --orgs orgs.json --out /etc/grafana/provisioning-managers

`--managers`: what scoring's admin API returns for each network
(`GET /admin/v1/networks/{network}/managers`). `--orgs`: manager id -> Grafana organisation id
(Grafana's file provisioning cannot create organisations: create one per manager with
`POST /api/orgs`, add the manager as its only Viewer, and list the ids here). The password of
each role is derived from the secret scoring holds (`MANAGER_PASSWORD_KEY`, read from the
environment here, never from an argument), written to `managers.env` (mode 0600) for Grafana's
environment; the YAML only names the variables.

Why one organisation each: in Grafana OSS any viewer of an organisation may send any SQL to any
of its datasources. The boundary is PostgreSQL (each role reads only its sites' rows, migration
scoring/0191); the organisation keeps a manager away from another manager's credentials.
National staff (scope "all") are left out: their role belongs to grafana_reader and they use
the all-sites datasource of the main organisation (provisioning/datasources/enquetes.yaml).

Writes: datasources/managers.yaml, dashboards/managers.yaml, enquetes-managers/*.json,
managers.env.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MANAGER_DATASOURCE_UID = "enquetes-manager-postgres"
MANAGER_SCHEMA = "scoring_managers"
BOARDS_PATH = "/var/lib/grafana/dashboards/enquetes-managers"
MANAGER_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
# Reporting views of other services' schemas: a manager's role may not read them, so their
# panels leave the managers' board (the verbatims come from scoring's own filtered view).
REWRITES = {
    "survey_responses.reporting_verbatims": f"{MANAGER_SCHEMA}.reporting_verbatims",
    "scoring.reporting_": f"{MANAGER_SCHEMA}.reporting_",
}
UNREADABLE = ("survey_dispatch.", "publication.", "survey_responses.")


def load_build() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_build", HERE / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def derive_password(key: str, role: str) -> str:
    """scoring.managers.derive_password (the same HMAC; deploy never imports a service)."""
    digest = hmac.new(key.encode(), role.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def manager_board(site_board: dict[str, Any]) -> dict[str, Any]:
    """The site board reading the managers' filtered views through the manager datasource."""
    board = copy.deepcopy(site_board)

    def rewrite(sql: str) -> str:
        for old, new in REWRITES.items():
            sql = sql.replace(old, new)
        return sql

    def readable(sql: str) -> bool:
        return not any(schema in sql for schema in UNREADABLE)

    panels = []
    for panel in board["panels"]:
        targets = panel.get("targets", [])
        if any(not readable(rewrite(t.get("rawSql", ""))) for t in targets):
            continue
        for target in targets:
            if "rawSql" in target:
                target["rawSql"] = rewrite(target["rawSql"])
        panels.append(panel)
    for variable in board["templating"]["list"]:
        if variable.get("type") == "query":
            variable["query"] = rewrite(variable["query"])
            if "definition" in variable:
                variable["definition"] = rewrite(variable["definition"])
    text = json.dumps({**board, "panels": panels})
    text = text.replace('"uid": "enquetes-postgres"', f'"uid": "{MANAGER_DATASOURCE_UID}"')
    result: dict[str, Any] = json.loads(text)
    result["uid"] = "enquetes-manager-site-weekly"
    result["title"] = board["title"] + " (mes sites)"
    result["panels"] = load_build().layout(result["panels"])
    return result


def env_name(manager_id: str) -> str:
    return f"ENQUETES_MANAGER_PASSWORD_{manager_id.upper()}"


def read_managers(documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Managers of every network's listing, national staff left out, ids checked."""
    managers: dict[str, dict[str, Any]] = {}
    for document in documents:
        for manager in document.get("managers", []):
            manager_id = str(manager.get("manager_id", ""))
            if not MANAGER_ID.fullmatch(manager_id):
                raise ValueError(f"identifiant de gestionnaire invalide : {manager_id!r}")
            if manager_id in managers:
                raise ValueError(f"gestionnaire en double : {manager_id}")
            if manager.get("scope") != "all":
                managers[manager_id] = dict(manager)
    return [managers[key] for key in sorted(managers)]


def provisioning(
    managers: list[dict[str, Any]], orgs: Mapping[str, int], key: str
) -> dict[str, str]:
    """File name -> content."""
    missing = [m["manager_id"] for m in managers if m["manager_id"] not in orgs]
    if missing:
        raise ValueError(
            "organisation Grafana manquante pour : " + ", ".join(missing)
            + " (créez-la avec POST /api/orgs et ajoutez son id dans --orgs)"
        )  # fmt: skip
    shared = [m for m in managers if list(orgs.values()).count(orgs[m["manager_id"]]) > 1]
    if shared or any(orgs[m["manager_id"]] == 1 for m in managers):
        raise ValueError("une organisation par gestionnaire, jamais l'organisation principale (1)")
    datasources = []
    providers = []
    env_lines = []
    for manager in managers:
        manager_id, role = manager["manager_id"], manager["login_role"]
        datasources.append({
            "name": "Enquêtes PostgreSQL (mes sites)",
            "uid": MANAGER_DATASOURCE_UID,
            "orgId": orgs[manager_id],
            "type": "grafana-postgresql-datasource",
            "url": "${ENQUETES_PG_HOST}",
            "user": role,
            "jsonData": {"database": "${ENQUETES_PG_DATABASE}",
                         "sslmode": "${ENQUETES_PG_SSLMODE}", "postgresVersion": 1800,
                         "timescaledb": False},
            "secureJsonData": {"password": "${" + env_name(manager_id) + "}"},
            "editable": False,
        })  # fmt: skip
        providers.append({
            "name": f"enquetes-{manager_id}", "orgId": orgs[manager_id], "folder": "Enquêtes",
            "type": "file", "disableDeletion": True, "allowUiUpdates": False,
            "updateIntervalSeconds": 60, "options": {"path": BOARDS_PATH},
        })  # fmt: skip
        env_lines.append(f"{env_name(manager_id)}={derive_password(key, role)}")
    header = "# Generated by deploy/grafana/managers.py from scoring's managers: do not edit.\n"
    board = manager_board(load_build().site_board())
    return {
        "datasources/managers.yaml": header
        + json.dumps({"apiVersion": 1, "datasources": datasources}, indent=2, ensure_ascii=False)
        + "\n",
        "dashboards/managers.yaml": header
        + json.dumps({"apiVersion": 1, "providers": providers}, indent=2, ensure_ascii=False)
        + "\n",
        "enquetes-managers/site-weekly-manager.json": json.dumps(
            board, indent=2, ensure_ascii=False
        )
        + "\n",
        "managers.env": "".join(line + "\n" for line in env_lines),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", nargs="+", type=Path, required=True)
    parser.add_argument("--orgs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    key = os.environ.get("MANAGER_PASSWORD_KEY", "")
    if not key:
        print("MANAGER_PASSWORD_KEY must hold scoring's secret", file=sys.stderr)
        return 2
    try:
        managers = read_managers(json.loads(path.read_text()) for path in args.managers)
        orgs = {str(k): int(v) for k, v in json.loads(args.orgs.read_text()).items()}
        files = provisioning(managers, orgs, key)
    except (ValueError, OSError) as error:  # never the key: the message names no secret
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, content in files.items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "managers.env":
            path.touch(mode=0o600)
            path.chmod(0o600)
        path.write_text(content, encoding="utf-8")
    print(f"{len(managers)} manager(s): provisioning written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
