"""The rules every change must keep: lint, format, types, and the import boundaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
TOOLS = Path(sys.executable).parent  # the project's virtual environment

COMMANDS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "mypy (strict on contracts, plumbing, every domain.py)": ["mypy"],
    "import-linter (services never import each other)": ["lint-imports"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_code_rules(name: str) -> None:
    tool, *arguments = COMMANDS[name]
    done = subprocess.run(
        [str(TOOLS / tool), *arguments], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
