"""Duplicate clicks across every tracker process: the same program and client (address and user
agent) within DUPLICATE_CLICK_SECONDS.

Redis is the shared memory: `SET click:<key> 1 NX EX <window>` succeeds for the first click and
fails for the next ones, atomically, whichever process or task gets them. The key is a keyed hash
(BLAKE2b under the day's visitor secret) of program, address and user agent: the address and user
agent are used in memory for this security purpose only, and what Redis holds for the window
cannot be turned back into them. No secret at hand, Redis down or slow (over REDIS_TIMEOUT_MS):
"not a duplicate", counted as unchecked.

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
        # Set by whoever records the clicks (the handlers): called with each checked click.
        self.on_checked: Callable[[Click, bool], None] = _unbound
        self._waiting: list[tuple[str, Click]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.results = dict.fromkeys(CHECK_RESULTS, 0)

    def submit(
        self, click: Click, program_id: str, address: str, user_agent: str, day: int
    ) -> None:
        """Check `click` after its answer; `on_checked(click, duplicate)` follows, always."""
        key = self._key(program_id, address, user_agent, day)
        if key is None:
            self.results[UNCHECKED] += 1
            self.on_checked(click, False)
            return
        self._waiting.append((key, click))
        self._idle.clear()
        self._wake.set()

    async def seen_before(self, program_id: str, address: str, user_agent: str, day: int) -> bool:
        """The same check, awaited (write-ahead mode: the answer waits for the event anyway)."""
        key = self._key(program_id, address, user_agent, day)
        if key is None:
            self.results[UNCHECKED] += 1
            return False
        return (await self._set_all([key]))[0]

    async def run(self) -> None:
        """Flush what was submitted, a pipeline at a time, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                answers = await self._set_all([key for key, _ in batch])
                for (_, click), duplicate in zip(batch, answers, strict=True):
                    self._hand_back(click, duplicate)
            self._idle.set()

    def _hand_back(self, click: Click, duplicate: bool) -> None:
        try:
            self.on_checked(click, duplicate)
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

    async def _set_all(self, keys: list[str]) -> list[bool]:
        """Whether each key was set already (a duplicate); all False when Redis fails us."""
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.set(key, b"1", nx=True, ex=self._window)
                    firsts = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            self.results[UNCHECKED] += len(keys)
            return [False] * len(keys)
        duplicates = [not first for first in firsts]
        self.results[DUPLICATE] += sum(duplicates)
        self.results[FIRST] += len(keys) - sum(duplicates)
        return duplicates


def _unbound(click: object, duplicate: bool) -> None:
    raise RuntimeError("DuplicateClicks.on_checked was never set")
