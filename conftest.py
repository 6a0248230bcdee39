"""Fixtures shared by every test folder: the real embedded infrastructure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing import devstack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.DevStack]:
    """A fresh broker, database, SMTP sink and SMS gateway for each test module."""
    running = devstack.start(tmp_path_factory.mktemp("devstack"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and reports for a person to review (git-ignored)."""
    folder = Path(__file__).parent / "artifacts"
    folder.mkdir(exist_ok=True)
    return folder
