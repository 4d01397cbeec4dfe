"""A bench part's bars: a measured figure against the bound it must hold, said the same way in
every part's summary and JSON."""

from __future__ import annotations

import statistics
from typing import Any


def verdict(holds: bool) -> str:
    return "holds" if holds else "DOES NOT hold"


def seconds_against(seconds: list[float], bound: float) -> dict[str, Any]:
    """Timed tries (put to visible, put to queryable, ...) and their bar: the slowest within
    `bound` seconds."""
    slowest = round(max(seconds), 2)
    return {
        "seconds": [round(s, 2) for s in seconds],
        "median_seconds": round(statistics.median(seconds), 2),
        "max_seconds": slowest,
        "bar": {"max_seconds": slowest, "bar_seconds": bound, "holds": max(seconds) <= bound},
    }
