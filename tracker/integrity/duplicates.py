"""Duplicate clicks across every tracker process: the same program and client (address and user
agent) within DUPLICATE_CLICK_SECONDS.

Redis is the shared memory: `SET click:<key> 1 NX EX <window>` succeeds for the first click and
fails for the next ones, atomically, whichever process or task gets them. The key is a keyed hash
(BLAKE2b under the day's visitor secret) of program, address and user agent: the address and user
agent are used in memory for this security purpose only, and what Redis holds for the window
cannot be turned back into them. No secret at hand, Redis down or slow (over REDIS_TIMEOUT_MS):
"not a duplicate", counted as unchecked; a click is never held up by this check (the handler
answers first and builds the click's event when the answer comes back, see handlers.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    import redis.asyncio as redis

    from tracker.privacy.daily_secret import DailySecrets

KEY_PREFIX = "click:"
FIRST, DUPLICATE, UNCHECKED = "first", "duplicate", "unchecked"
CHECK_RESULTS = (FIRST, DUPLICATE, UNCHECKED)


class DuplicateClicks:
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
        self._pending: set[asyncio.Task[None]] = set()
        self.results = dict.fromkeys(CHECK_RESULTS, 0)

    async def seen_before(self, program_id: str, address: str, user_agent: str, day: int) -> bool:
        """Whether this click repeats one within the window; False when that cannot be known."""
        secret = self._secrets.for_day(day)
        if secret is None:
            self.results[UNCHECKED] += 1
            return False
        message = f"{program_id}\n{address}\n{user_agent}".encode()
        key = KEY_PREFIX + hashlib.blake2b(message, key=secret, digest_size=16).hexdigest()
        try:
            async with asyncio.timeout(self._timeout):
                first = await self._client.set(key, b"1", nx=True, ex=self._window)
        except (RedisError, OSError, TimeoutError):
            self.results[UNCHECKED] += 1
            return False
        outcome = FIRST if first else DUPLICATE
        self.results[outcome] += 1
        return outcome == DUPLICATE

    def run_after_answer(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work` (check, then record the click) in its own task, kept until done so that a
        shutdown can wait for it."""
        task = asyncio.create_task(work())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def settle(self) -> None:
        """Wait for the clicks whose events are still being recorded (each within the timeout)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
