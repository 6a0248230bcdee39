"""`make test`'s two workers keep each module's tests together (see the root conftest)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a pytest run of its own

ROOT = Path(__file__).resolve().parents[1]
# Two quick modules of pure tests, several tests each.
MODULES = ("services/scoring/tests/test_irritants.py", "services/scoring/tests/test_rebuild_end.py")


def test_two_workers_keep_each_modules_tests_on_one_worker(tmp_path: Path) -> None:
    """Under xdist 3.8's `loadgroup` with pytest 9.2 every test was its own work unit: the
    scoring integration module ran on both workers against two stacks, and its rebuild test
    missed the duplicates another test had sent to the other stack."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'basetemp'}", *MODULES],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    workers_of: dict[str, set[str]] = defaultdict(set)
    for worker, module in re.findall(r"^\[(gw\d+)\] .*? PASSED (\S+?)::", done.stdout, re.M):
        workers_of[module].add(worker)
    assert set(workers_of) == set(MODULES), done.stdout[-3000:]
    assert all(len(workers) == 1 for workers in workers_of.values()), dict(workers_of)
