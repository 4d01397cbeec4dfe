"""Duplicate clicks across every tracker process: the same program and client (address and user
agent) within DUPLICATE_CLICK_SECONDS.

Redis is the shared memory: `SET click:<key> <id> NX GET EX <window>` succeeds for the first click
and fails for the next ones, atomically, whichever process or task gets them (Redis 7 or later).
The value is the first click's click id when it was given one ("1" otherwise), and a duplicate
gets it back: its event then names the first click (`original_click_id`), which a conversion
reported with the second click's id is attributed to (a double click lands on the second id).
The key is a keyed hash (BLAKE2b under the day's visitor secret) of program, address and user
agent: the address and user agent are used in memory for this security purpose only, and what
Redis holds for the window cannot be turned back into them. No secret at hand, Redis down or
slow (over REDIS_TIMEOUT_MS): "not a duplicate", counted as unchecked.

A click is never held up by this check: the handler answers, then `submit`s the click. A
background flusher sends every click submitted meanwhile in one pipeline (a round trip and a
task per click cost ~200 us of CPU each, measured in docs/benchmarks.md), and hands each click
back with its answer to `on_checked`, which records its event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from redis.exceptions import RedisError

from tracker.privacy.keys import client_digest

if TYPE_CHECKING:
    import redis.asyncio as redis

    from tracker.privacy.daily_secret import DailySecrets

log = logging.getLogger(__name__)

KEY_PREFIX = "click:"
FIRST, DUPLICATE, UNCHECKED = "first", "duplicate", "unchecked"
CHECK_RESULTS = (FIRST, DUPLICATE, UNCHECKED)
MAX_BATCH = 500  # clicks in one pipeline; more wait for the next one

Click = TypeVar("Click")


class DuplicateClicks(Generic[Click]):
    def __init__(
        self,
        client: redis.Redis,
        secrets: DailySecrets,
        window_seconds: int,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._secrets = secrets
        self._window = window_seconds
        self._timeout = timeout_seconds
        # Set by whoever records the clicks (the handlers): called with each checked click and
        # what the check found: None for a first click, else the first click's value.
        self.on_checked: Callable[[Click, bytes | None], None] = _unbound
        # The click id a click was given ("" for none): stored for its duplicates to find.
        self.click_id_of: Callable[[Click], str] = _no_click_id
        self._waiting: list[tuple[str, Click]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.results = dict.fromkeys(CHECK_RESULTS, 0)

    def submit(
        self, click: Click, program_id: str, address: str, user_agent: str, day: int
    ) -> None:
        """Check `click` after its answer; `on_checked(click, found)` follows, always."""
        key = self._key(program_id, address, user_agent, day)
        if key is None:
            self.results[UNCHECKED] += 1
            self.on_checked(click, None)
            return
        self._waiting.append((key, click))
        self._idle.clear()
        self._wake.set()

    async def seen_before(self, click: Click, client: tuple[str, str, str, int]) -> bytes | None:
        """The same check, awaited (write-ahead mode: the answer waits for the event anyway);
        `client`: program id, address, user agent, day."""
        key = self._key(*client)
        if key is None:
            self.results[UNCHECKED] += 1
            return None
        return (await self._set_all([(key, click)]))[0]

    async def run(self) -> None:
        """Flush what was submitted, a pipeline at a time, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                answers = await self._set_all(batch)
                for (_, click), found in zip(batch, answers, strict=True):
                    self._hand_back(click, found)
            self._idle.set()

    def _hand_back(self, click: Click, found: bytes | None) -> None:
        try:
            self.on_checked(click, found)
        except Exception:
            log.exception("recording a checked click failed")

    async def settle(self) -> None:
        """Wait until every submitted click has been checked and handed back (at shutdown)."""
        await self._idle.wait()

    def _key(self, program_id: str, address: str, user_agent: str, day: int) -> str | None:
        secret = self._secrets.for_day(day)
        if secret is None:
            return None
        return KEY_PREFIX + client_digest(secret, program_id, address, user_agent)

    async def _set_all(self, clicks: list[tuple[str, Click]]) -> list[bytes | None]:
        """For each (key, click): None when it is the first, else what the first one stored;
        all None when Redis fails us."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.pipeline(transaction=False) as pipe:
                    for key, click in clicks:
                        value = self.click_id_of(click) or "1"
                        pipe.set(key, value, nx=True, ex=self._window, get=True)
                    found: list[bytes | None] = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self.results[UNCHECKED] += len(clicks)
            return [None] * len(clicks)
        duplicates = sum(value is not None for value in found)
        self.results[DUPLICATE] += duplicates
        self.results[FIRST] += len(clicks) - duplicates
        return found


def _unbound(click: object, found: bytes | None) -> None:
    raise RuntimeError("DuplicateClicks.on_checked was never set")


def _no_click_id(click: object) -> str:
    return ""
