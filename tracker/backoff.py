"""Full-jitter exponential backoff, shared by every retry loop (shipper, consumers)."""

from __future__ import annotations

import random

BASE_BACKOFF = 0.05
MAX_BACKOFF = 5.0
_DEFAULT_RNG = random.Random()


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Uniform in [0, min(cap, base * 2**attempt)]: retries of many callers spread out."""
    return (rng or _DEFAULT_RNG).uniform(0, min(MAX_BACKOFF, BASE_BACKOFF * 2 ** min(attempt, 16)))
