"""Fixtures shared by every test folder: the real embedded infrastructure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from plumbing import devstack
from plumbing.services import System, start_system
from plumbing.sinks import SmtpSink

# Property tests run beside real services on 2 cores: an example that waited for a core is no
# failure (hypothesis' 200 ms deadline failed test_a_response_counts_once_whatever_its_answers_
# are_called once under `-n 2`, then passed alone). Speed is measured by `make bench`.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.DevStack]:
    """A fresh broker, database, SMTP sink and SMS gateway for each test module."""
    running = devstack.start(tmp_path_factory.mktemp("devstack"))
    try:
        yield running
    finally:
        running.stop()


def quick_system(
    stack: devstack.DevStack, log_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[System]:
    """All four services on `stack`, sending at once (no delay, no quiet hours) and publishing
    from the first response, so a test follows one survey end to end quickly."""
    running = start_system(
        stack.env(),
        log_dir,
        extra_env={
            "PUBLIC_FLOOR": "1",
            "SENDER_POLL_SECONDS": "0.05",
            "DEFAULT_RULES": '{"delay_minutes": 0, "email_uses_sms_window": false}',
            **(extra_env or {}),
        },
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def system(stack: devstack.DevStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The whole system on the module's stack (see `quick_system`)."""
    yield from quick_system(stack, tmp_path_factory.mktemp("logs"))


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    """A lone SMTP sink (the devstack's) writing into the test's own maildir."""
    server = SmtpSink(tmp_path / "maildir")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and reports for a person to review (git-ignored)."""
    folder = Path(__file__).parent / "artifacts"
    folder.mkdir(exist_ok=True)
    return folder


# The modules that keep both cores busy on their own (kills under load, outages, the chaos run).
CORE_HUNGRY_MODULES = frozenset(
    {
        "tests/e2e/test_chaos.py",
        "tests/e2e/test_personal_data_scan.py",
        "services/scoring/tests/test_kill_under_load.py",
        "services/scoring/tests/test_crash_recovery.py",
        "services/survey-dispatch/tests/test_dispatch_crash.py",
        "services/survey-dispatch/tests/test_dispatch_integration.py",
    }
)


def work_unit_of(nodeid: str) -> str:
    """The xdist work unit a test belongs to: its module, or the core-hungry queue."""
    module = nodeid.split("::", 1)[0]
    return "core-hungry" if module in CORE_HUNGRY_MODULES else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`make test` runs two pytest-xdist workers: a module's tests stay on one worker, so its
    module-scoped stack starts once and sees every test of the module, and the core-hungry
    modules queue on the same worker, so two of them never share the machine and race each
    other's timings.

    A scheduler of our own rather than `--dist loadgroup` with `xdist_group` marks: xdist 3.8
    appends the group to `item._nodeid`, which pytest 9.2 no longer reads, so every test became
    its own work unit and a module's tests ran on both workers against two stacks."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit_of(nodeid)

    return ModuleScheduling(config, log)
