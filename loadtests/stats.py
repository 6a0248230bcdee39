"""Small helpers for the scenarios' figures."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation): the value a reader can find in the data."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_figures(seconds: Sequence[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
        f"{prefix}_p95_ms": round(percentile(seconds, 0.95) * 1000, 1),
        f"{prefix}_samples": len(seconds),
    }
