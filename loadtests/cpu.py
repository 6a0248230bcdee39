"""CPU time spent by each part of a benchmark, to turn a throughput into a cost per item.

A throughput on a shared 2-core machine says little on its own; CPU milliseconds per item in
each process (the service, PostgreSQL, the broker, the local sinks) say where the time goes and
what one more core would buy.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

Probe = Callable[[], float]


def process_tree(pid: int) -> Probe:
    """CPU seconds of a process and its children, including children that already exited
    (PostgreSQL backends come and go; the postmaster reaps them)."""

    def probe() -> float:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
        return float(total)

    return probe


def thread(native_id: int) -> Probe:
    """CPU seconds of one thread of this process (e.g. the SMTP sink's event loop)."""

    def probe() -> float:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return probe


class CpuMeter:
    def __init__(self, probes: dict[str, Probe]) -> None:
        self.probes = probes
        self.started: dict[str, float] = {}

    def start(self) -> None:
        self.started = {name: probe() for name, probe in self.probes.items()}

    def ms_per_item(self, items: int, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_{name}": round((probe() - self.started[name]) * 1000 / max(items, 1), 3)
            for name, probe in self.probes.items()
        }
