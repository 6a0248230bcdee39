"""Copy the Grafana dashboards into the chart, so that Helm can package them.

    uv run python deploy/helm/sync_dashboards.py          # copy deploy/grafana/dashboards/*.json
    uv run python deploy/helm/sync_dashboards.py --check  # exit 1 if the chart's copy is stale

Helm only reads files inside the chart directory (and refuses dangling symlinks), so the chart
keeps a copy in `enquetes/dashboards/`; the chart renders one ConfigMap per JSON file there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELM_DIR = Path(__file__).resolve().parent
SOURCE_DIR = HELM_DIR.parent / "grafana" / "dashboards"
CHART_DIR = HELM_DIR / "enquetes" / "dashboards"


def wanted() -> dict[str, bytes]:
    """Dashboard file name to content, as the chart should hold them."""
    if not SOURCE_DIR.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(SOURCE_DIR.glob("*.json"))}


def present() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(CHART_DIR.glob("*.json"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the chart's copy is stale")
    args = parser.parse_args(argv)
    expected, current = wanted(), present()
    if args.check:
        if expected != current:
            print(f"{CHART_DIR} is stale: run deploy/helm/sync_dashboards.py", file=sys.stderr)
            return 1
        return 0
    CHART_DIR.mkdir(parents=True, exist_ok=True)
    for name in current.keys() - expected.keys():
        (CHART_DIR / name).unlink()
    for name, content in expected.items():
        if current.get(name) != content:
            (CHART_DIR / name).write_bytes(content)
    print(f"{len(expected)} dashboard(s) in {CHART_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
