"""`contracts/` builds as its own wheel, which installs into a fresh venv and runs `enquetes`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CONTRACTS = Path(__file__).parents[1]


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).exists():
        pytest.fail("uv is needed to build the contracts wheel")
    return found


def test_contracts_wheel_builds_installs_alone_and_validates(tmp_path):
    uv = _uv()
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "build", "--wheel", str(CONTRACTS), "-o", str(tmp_path / "dist")],
        check=True, capture_output=True, timeout=180, env=env,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("enquetes_contracts-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith("METADATA"))
        requires = [
            line for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]  # fmt: skip
    assert "contracts/cli.py" in names
    assert "contracts/schemas/fr.enquetes.contact.closed.v1.json" in names
    assert not any("tests/" in name or name.endswith("pyproject.toml") for name in names)
    assert requires == [
        "Requires-Dist: pydantic>=2.10",
        "Requires-Dist: aiokafka>=0.12; extra == 'kafka'",
    ]

    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(wheel)],
        check=True, capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    good = tmp_path / "ok.jsonl"
    good.write_text(
        json.dumps(
            {"contact_id": "c-1", "closed_at": "2026-05-02T14:30:00+02:00", "site_id": "s-1",
             "network": "urssaf", "channel": "telephone", "motif": "m", "user_ref": "u-1"}
        ) + "\n"
    )  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"contact_id": "c-2"}\n')
    outside = {**env, "PYTHONPATH": ""}
    enquetes = str(venv / "bin" / "enquetes")

    ok = subprocess.run(
        [enquetes, "validate", str(good)], capture_output=True, text=True, cwd=tmp_path,
        env=outside, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(
        [enquetes, "validate", str(bad)], capture_output=True, text=True, cwd=tmp_path,
        env=outside, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "ligne 1 / line 1: closed_at\n  fr : champ obligatoire absent" in refused.stdout
    where = subprocess.run(
        [str(python), "-c", "import contracts, sys; print(contracts.__file__);"
         "print(sorted(m for m in ('aiokafka', 'fastapi', 'plumbing') if m in sys.modules))"],
        capture_output=True, text=True, cwd=tmp_path, env=outside, timeout=60, check=True,
    )  # fmt: skip
    assert where.stdout.splitlines() == [
        str(venv / "lib" / next(p.name for p in (venv / "lib").iterdir()) / "site-packages"
            / "contracts" / "__init__.py"),
        "[]",
    ]  # fmt: skip
