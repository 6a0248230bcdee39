"""The benchmark harness: `make bench` runs every scenario in `loadtests/scenarios/` against a
fresh devstack and writes a dated results file with the machine's description.

A scenario is a module with `NAME`, `DESCRIPTION` and `async def run(ctx: BenchContext) -> dict`
returning figures (numbers, with the unit in the key, e.g. `p95_ms`, `per_second`).
`python -m loadtests.bench [scenario ...]` runs only the named ones. A scenario with
`DEFAULT_RUN = False` (the minutes-long chaos run) runs only when named (`make chaos`); one with
`NEEDS_STACK = False` (a pure computation) runs without a devstack.
A scenario whose figures hold a non-empty `violations` list makes the run exit with 1, after the
results file is written; so does a scenario that raises (its error is the violation).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import scenarios
from plumbing import devstack

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class BenchContext:
    stack: devstack.DevStack | None  # None for a scenario with `NEEDS_STACK = False`
    workdir: Path


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as info:
        memory_kb = int(info.readline().split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def available() -> dict[str, Any]:
    found = {}
    for module_info in pkgutil.iter_modules(scenarios.__path__):
        module = importlib.import_module(f"loadtests.scenarios.{module_info.name}")
        found[module.NAME] = module
    return found


async def run_all(names: list[str]) -> dict[str, Any]:
    modules = available()
    chosen = names or sorted(n for n, m in modules.items() if getattr(m, "DEFAULT_RUN", True))
    results: dict[str, Any] = {}
    for name in chosen:
        module = modules[name]
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
            needs_stack = getattr(module, "NEEDS_STACK", True)
            stack = devstack.start(Path(folder) / "stack") if needs_stack else None
            try:
                started = time.perf_counter()
                print(f"[bench] {name}: {module.DESCRIPTION}", flush=True)
                try:
                    figures = await module.run(BenchContext(stack, Path(folder)))
                except Exception as error:  # still a results file, saying what broke
                    figures = {"violations": [f"the scenario raised {error!r}"]}
                figures["scenario_seconds"] = round(time.perf_counter() - started, 1)
                results[name] = {"description": module.DESCRIPTION, "figures": figures}
                print(f"[bench] {name}: {json.dumps(figures)}", flush=True)
            finally:
                if stack is not None:
                    stack.stop()
    return results


def main(argv: list[str]) -> None:
    results = asyncio.run(run_all(argv))
    now = datetime.now(UTC)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{now:%Y-%m-%dT%H%M%SZ}.json"
    path.write_text(
        json.dumps(
            {"date": now.isoformat(), "machine": machine(), "results": results},
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"[bench] results written to {path}")
    failed = [name for name, result in results.items() if result["figures"].get("violations")]
    if failed:
        sys.exit(f"[bench] violations in {', '.join(failed)}: see {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
