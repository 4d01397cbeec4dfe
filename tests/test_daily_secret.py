"""The day's visitor secret, shared through a real redis-server, with an injected clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from tests.support.clock import FakeClock
from tests.support.waiting import wait_until
from tracker.devstack.processes import ManagedProcess
from tracker.privacy.daily_secret import (
    DAY_SECONDS,
    KEY_PREFIX,
    PREFETCH_SECONDS,
    DailySecrets,
    utc_day,
)

# Today's noon: Redis expires keys by its own clock, so the injected one must not lie about the
# date, only about the time of day.
NOON = utc_day(time.time()) * DAY_SECONDS + DAY_SECONDS / 2


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    await client.aclose()


async def running(secrets: DailySecrets) -> asyncio.Task[None]:
    return asyncio.create_task(secrets.run())


async def stopped(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def has_secret(secrets: DailySecrets, day: int) -> Callable[[], bool]:
    return lambda: secrets.for_day(day) is not None


async def test_every_tracker_gets_the_same_secret_which_expires_within_48_hours(
    client: redis.Redis,
) -> None:
    clock = FakeClock(NOON)
    first, second = DailySecrets(client, clock), DailySecrets(client, clock)
    tasks = [await running(first), await running(second)]
    today = utc_day(NOON)
    await wait_until(has_secret(first, today), what="first secret")
    await wait_until(has_secret(second, today), what="second secret")
    assert first.for_day(today) == second.for_day(today)
    assert len(first.for_day(today) or b"") == 32
    expires_at = await client.expiretime(f"{KEY_PREFIX}{today}")
    assert expires_at == today * DAY_SECONDS + 2 * DAY_SECONDS
    assert first.for_day(today + 1) is None  # not before the prefetch moment
    await stopped(*tasks)


async def test_tomorrows_secret_is_fetched_before_midnight_and_yesterdays_forgotten(
    client: redis.Redis,
) -> None:
    today = utc_day(NOON)
    clock = FakeClock((today + 1) * DAY_SECONDS - PREFETCH_SECONDS / 2)
    secrets = DailySecrets(client, clock)
    task = await running(secrets)
    await wait_until(has_secret(secrets, today + 1), what="tomorrow's secret")
    assert secrets.for_day(today) is not None
    assert secrets.for_day(today) != secrets.for_day(today + 1)
    clock.now = (today + 1) * DAY_SECONDS + 1
    secrets.fetch_soon()  # a request of the new day
    await wait_until(lambda: secrets.for_day(today) is None, what="yesterday forgotten")
    assert secrets.for_day(today + 1) is not None
    await stopped(task)


async def test_a_request_of_a_new_day_gets_its_secret_fetched(client: redis.Redis) -> None:
    clock = FakeClock(NOON)
    secrets = DailySecrets(client, clock)
    task = await running(secrets)
    today = utc_day(NOON)
    await wait_until(has_secret(secrets, today), what="today's secret")
    clock.now += 3 * DAY_SECONDS  # a clock jump
    secrets.fetch_soon()
    await wait_until(has_secret(secrets, today + 3), what="the new day's secret")
    await stopped(task)


async def test_redis_down_means_no_secret_and_counted_failures(
    client: redis.Redis, redis_proc: ManagedProcess
) -> None:
    redis_proc.kill()
    secrets = DailySecrets(client, FakeClock(NOON))
    task = await running(secrets)
    await wait_until(lambda: secrets.failures >= 2, what="failures counted")
    assert secrets.for_day(utc_day(NOON)) is None
    await stopped(task)


async def test_a_lost_key_is_put_back_so_later_trackers_agree(client: redis.Redis) -> None:
    clock = FakeClock(NOON)
    today = utc_day(NOON)
    key = f"{KEY_PREFIX}{today}"
    first = DailySecrets(client, clock)
    task = await running(first)
    await wait_until(has_secret(first, today), what="secret")
    held = first.for_day(today)
    await client.flushall()  # Redis lost it (a flush, a failover without persistence)
    first.fetch_soon()
    for _ in range(500):
        if await client.get(key) is not None:
            break
        await asyncio.sleep(0.01)
    assert await client.get(key) == held
    later = DailySecrets(client, clock)
    task_later = await running(later)
    await wait_until(has_secret(later, today), what="later tracker's secret")
    assert later.for_day(today) == held
    await stopped(task, task_later)
