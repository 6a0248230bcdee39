"""Runs the four services as real processes (demo, e2e tests, benchmarks), one or more replicas
of each (each replica its own port and log, all on the same database, broker and group)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from plumbing import processes

SERVICES = {
    "survey-dispatch": "survey_dispatch",
    "responses": "survey_responses",
    "scoring": "scoring",
    "publication": "publication",
}


@dataclass
class ServiceProcess:
    name: str
    package: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = processes.spawn(
            [sys.executable, "-m", self.package, "serve", "--migrate"],
            env=self.env,
            log_path=self.log_path,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as Kubernetes stops a pod: the service drains (in-flight requests finish,
        consumers commit and leave their group) and exits. Returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no last commit; the harshest crash we can cause."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process:
            processes.stop(self.process)


@dataclass
class System:
    """`services` holds the first replica of each service (`system["responses"]`); `replicas`
    holds them all, in order."""

    services: dict[str, ServiceProcess] = field(default_factory=dict)
    replicas: dict[str, list[ServiceProcess]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def all(self) -> list[ServiceProcess]:
        return [replica for group in self.replicas.values() for replica in group]

    def stop(self) -> None:
        for service in self.all() or self.services.values():
            service.stop()


def system_env(
    stack_env: dict[str, str], ports: dict[str, int], extra: dict[str, str] | None = None
) -> dict[str, str]:
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return {
        **os.environ,
        **stack_env,
        "ENVIRONMENT": "dev",
        "PUBLIC_SURVEY_BASE_URL": url["responses"],
        "PUBLIC_OPTOUT_BASE_URL": url["survey-dispatch"],
        "PUBLIC_RESULTS_BASE_URL": url["publication"],
        **(extra or {}),
    }


def start_system(
    stack_env: dict[str, str],
    log_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    only: tuple[str, ...] = tuple(SERVICES),
    replicas: int = 1,
    ready_timeout: float = 60.0,
    wait_ready: bool = True,
) -> System:
    """Start `replicas` processes of each service in `only`, and wait until each is ready
    (`wait_ready=False`: as soon as they are spawned). The public base URLs in the mails name
    the first replica of each (there is no load balancer here)."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    ports = {name: processes.free_port() for name in SERVICES}
    env = system_env(stack_env, ports, extra_env)
    system = System()
    try:
        for name in only:
            for n in range(replicas):
                port = ports[name] if n == 0 else processes.free_port()
                service = ServiceProcess(
                    name if n == 0 else f"{name}-{n}",
                    SERVICES[name],
                    port,
                    {**env, "HTTP_PORT": str(port)},
                    log_dir / (f"{name}.log" if n == 0 else f"{name}-{n}.log"),
                )
                if n == 0:
                    system.services[name] = service
                system.replicas.setdefault(name, []).append(service)
                service.start()
        for service in system.all() if wait_ready else ():
            service.wait_ready(ready_timeout)
    except BaseException:
        system.stop()
        raise
    return system
