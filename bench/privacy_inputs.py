"""The privacy settings of the bench's trackers, the uid its requests carry, and the day's visitor
secret as a running tracker holds it (for the in-process benchmarks, which have no Redis)."""

from __future__ import annotations

from typing import cast

from tracker.privacy.daily_secret import DailySecrets

VENDOR_ID = 755  # TCF_VENDOR_ID: the TC strings of bench/consent_strings.py name it
# Not a secret: the bench's own USER_ID_KEY (>= 16 bytes), also given to its tracker process.
USER_ID_KEY_TEXT = "bench-user-id-key-0123456789abcdef"
USER_ID = "user-12345"
DAY = 20_788  # 2026-12-01; any day will do, the stand-in has a secret for it
STAMP_MS = DAY * 86_400_000 + 1  # a millisecond of that day


class FixedSecrets:
    """Stands in for DailySecrets, whose request path is `for_day` (a dict's `get`) and, only when
    the day's secret is missing, `fetch_soon`: here the secret of DAY is always at hand."""

    def __init__(self, secret: bytes) -> None:
        self.for_day = {DAY: secret}.get  # the same C call as the real one

    def fetch_soon(self) -> None:
        """Never called: the secret is never missing."""


def fixed_secrets() -> DailySecrets:
    """The day's visitor secret always at hand, as in a running tracker once it has fetched it."""
    return cast(DailySecrets, FixedSecrets(bytes(range(32))))  # only its request path is used
