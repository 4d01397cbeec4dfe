"""Stopping background tasks at shutdown (tracker.task_stop), also when a cancellation is lost.

On Python 3.11, redis-py sends each command under asyncio.wait_for (its socket timeout), and
3.11's wait_for returns normally when the cancellation arrives just as the write finishes: the
cancellation is lost. A loop that pings Redis then carries on, and a plain cancel-then-gather
waits for it for ever: a tracker hung in its shutdown. The last test runs the tracker's real
Redis probe against a real redis-server and stops it at random moments.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tracker.core import build_core
from tracker.health import probe_redis
from tracker.settings import TrackerSettings
from tracker.task_stop import stop_tasks


class Stubborn:
    """A loop that swallows its first `swallow` cancellations, as a buggy library would."""

    def __init__(self, swallow: int) -> None:
        self.swallow = swallow
        self.swallowed = 0

    async def run(self) -> None:
        for _ in range(200):  # bounded: 10 s at most, whatever happens to the cancellations
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if self.swallowed >= self.swallow:
                    raise
                self.swallowed += 1


async def test_a_task_that_loses_cancellations_is_cancelled_until_it_stops() -> None:
    stubborn = Stubborn(swallow=3)
    task = asyncio.create_task(stubborn.run())
    await asyncio.sleep(0)
    assert await stop_tasks([task]) == set()
    assert task.cancelled()
    assert stubborn.swallowed == 3


async def test_a_task_that_never_stops_is_left_behind_after_the_patience(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubborn = Stubborn(swallow=10**9)
    task = asyncio.create_task(stubborn.run(), name="stubborn")
    await asyncio.sleep(0)
    assert await stop_tasks([task], patience=0.3) == {task}
    assert not task.done()
    assert stubborn.swallowed > 1  # it was cancelled again, not once
    assert "tasks did not stop when cancelled" in caplog.text
    assert "stubborn" in str(caplog.records[-1].__dict__.get("tasks"))
    stubborn.swallow = 0  # the next cancellation is taken: nothing left running
    assert await stop_tasks([task]) == set()


async def test_finished_and_crashed_tasks_are_collected_without_warnings() -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    crashed = asyncio.create_task(crash())
    finished = asyncio.create_task(asyncio.sleep(0))
    sleeping = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0.01)
    assert await stop_tasks([crashed, finished, sleeping]) == set()
    assert sleeping.cancelled()
    # pytest turns "Task exception was never retrieved" into an error: the crash was retrieved.


@pytest.mark.timeout(120)
async def test_the_redis_probe_always_stops_though_redis_py_loses_cancellations(
    tracker_env: dict[str, str],
) -> None:
    core = build_core(TrackerSettings.from_env(tracker_env))
    chance = random.Random(20_261_201)
    left: set[asyncio.Task[None]] = set()
    try:
        for _ in range(200):
            probe = asyncio.create_task(probe_redis(core))
            await asyncio.sleep(chance.random() * 0.003)  # mid-ping, more often than not
            left |= await stop_tasks([probe], patience=1.0)
        assert left == set()
    finally:
        await _force_stop(left)
        await core.redis_client.aclose()
        await core.pubsub_client.aclose()


async def _force_stop(tasks: set[asyncio.Task[None]]) -> None:
    """Should stop_tasks fail, what it left behind must not hang the test's event loop at its
    close (which cancels each task once): cancelled until done, bounded."""
    for _ in range(200):
        if all(task.done() for task in tasks):
            return
        for task in tasks:
            task.cancel()
        await asyncio.sleep(0.01)
