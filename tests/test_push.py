"""Pushed program changes, resync after Redis restarts, and behaviour while Redis is down."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from tests.conftest import StartTracker
from tests.support.kinesis import wait_for_events
from tests.support.programs import program, write_programs
from tests.support.waiting import wait_until
from tracker.app import CORE
from tracker.devstack.processes import ManagedProcess, redis_server
from tracker.programs.model import Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.validation.cache import Absent


async def click_location(client: object, program_id: str) -> str | int:
    response = await client.get(  # type: ignore[attr-defined]
        "/v1/click", params={"program": program_id}, allow_redirects=False
    )
    return str(response.headers["Location"]) if response.status == 302 else int(response.status)


async def test_pushed_update_changes_the_next_answer(
    start_tracker: StartTracker, redis_url: str
) -> None:
    await write_programs(redis_url, [program("p1", landing_url="https://a.example/")])
    client = await start_tracker()
    assert await click_location(client, "p1") == "https://a.example/"
    await write_programs(redis_url, [program("p1", version=2, landing_url="https://b.example/")])
    cache = client.app[CORE].cache
    await wait_until(lambda: _landing(cache.get("p1")) == "https://b.example/", timeout=1.0)
    assert await click_location(client, "p1") == "https://b.example/"


async def test_pushed_delete_makes_the_program_unknown(
    start_tracker: StartTracker, redis_url: str
) -> None:
    await write_programs(redis_url, [program("p1")])
    client = await start_tracker()
    assert await click_location(client, "p1") == "https://example.com/p1"
    await write_programs(redis_url, [{"program_id": "p1", "deleted": True, "version": 2}])
    cache = client.app[CORE].cache
    await wait_until(lambda: isinstance(cache.get("p1"), Absent), timeout=1.0)
    assert await click_location(client, "p1") == 404
    # The tombstone in Redis also answers a cold lookup as unknown.
    cache.clear()
    assert await click_location(client, "p1") == 404


async def test_stale_version_is_ignored(start_tracker: StartTracker, redis_url: str) -> None:
    await write_programs(redis_url, [program("p1", version=5, landing_url="https://new.example/")])
    client = await start_tracker()
    assert await click_location(client, "p1") == "https://new.example/"
    core = client.app[CORE]
    # Redis refuses an older version, and a stale message published by hand is ignored by L1.
    assert await write_programs(redis_url, [program("p1", version=4)]) == 0
    publisher = redis.Redis.from_url(redis_url)
    stale = Program("p1", "old", 42, "c", "s", True, 3, landing_url="https://old.example/")
    await publisher.publish("program-updates", _json(stale))
    await publisher.aclose()
    ignored = {"result": "ignored_stale"}
    await wait_until(
        lambda: (
            core.metrics.registry.get_sample_value("tracker_program_updates_total", ignored) == 1
        ),
        timeout=1.0,
    )
    assert await click_location(client, "p1") == "https://new.example/"


async def test_resync_after_redis_restart_catches_missed_changes(
    start_tracker: StartTracker, redis_proc: ManagedProcess, redis_url: str
) -> None:
    await write_programs(redis_url, [program("p1", landing_url="https://before.example/")])
    client = await start_tracker()
    core = client.app[CORE]
    assert await click_location(client, "p1") == "https://before.example/"
    redis_proc.kill()
    await wait_until(lambda: not core.subscriber.live, what="subscription to drop")
    restarted = redis_server(redis_proc.port).start()
    try:
        # Redis lost everything (no persistence); the change below is published while the
        # tracker is not subscribed yet, or just before: only a resync can bring it in.
        await write_programs(redis_url, [program("p1", landing_url="https://after.example/")])
        await wait_until(lambda: core.subscriber.live, what="resubscribe")
        await wait_until(lambda: _landing(core.cache.get("p1")) == "https://after.example/")
        assert await click_location(client, "p1") == "https://after.example/"
        resyncs = core.metrics.registry.get_sample_value("tracker_cache_resyncs_total")
        assert resyncs is not None
        assert resyncs >= 2
    finally:
        restarted.kill()


async def test_unverified_while_redis_is_down_and_no_redis_wait(
    start_tracker: StartTracker,
    redis_proc: ManagedProcess,
    redis_url: str,
    kinesalite_url: str,
    event_stream: str,
) -> None:
    await write_programs(redis_url, [program("cached")])
    client = await start_tracker()
    core = client.app[CORE]
    await client.get("/v1/pixel", params={"program": "cached"})
    redis_proc.kill()
    await wait_until(lambda: not core.store.available, what="Redis marked down")
    calls_before = core.resolver.redis_calls
    for _ in range(20):
        response = await client.get("/v1/pixel", params={"program": "not-cached"})
        assert response.status == 200
    assert (await client.get("/v1/click", params={"program": "not-cached"})).status == 404
    # Fail fast: while Redis is known to be down, no request even tries it.
    assert core.resolver.redis_calls == calls_before
    await client.get("/v1/pixel", params={"program": "cached"})
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert set((await ready.json())["problems"]) >= {"redis", "subscription"}
    events = await wait_for_events(kinesalite_url, event_stream, 23)
    outcomes = [(e.programid, e.validation) for e in events]
    assert outcomes.count(("not-cached", pb.UNVERIFIED)) == 21
    assert outcomes.count(("cached", pb.OK)) == 2


async def test_concurrent_misses_for_one_id_make_one_redis_call(
    start_tracker: StartTracker, redis_url: str
) -> None:
    await write_programs(redis_url, [program("hot")])
    client = await start_tracker()
    admin = redis.Redis.from_url(redis_url)
    await admin.config_resetstat()
    responses = await asyncio.gather(
        *(client.get("/v1/pixel", params={"program": "hot"}) for _ in range(100))
    )
    assert {r.status for r in responses} == {200}
    stats = await admin.info("commandstats")
    await admin.aclose()
    assert stats["cmdstat_hgetall"]["calls"] == 1
    hits = client.app[CORE].metrics.registry.get_sample_value
    assert hits("tracker_cache_lookups_total", {"result": "miss"}) == 100


async def test_unknown_ids_hit_the_negative_cache(
    start_tracker: StartTracker, redis_url: str
) -> None:
    client = await start_tracker()
    admin = redis.Redis.from_url(redis_url)
    await admin.config_resetstat()
    for _ in range(50):
        await client.get("/v1/pixel", params={"program": "bogus"})
    stats = await admin.info("commandstats")
    await admin.aclose()
    assert stats["cmdstat_hgetall"]["calls"] == 1
    value = client.app[CORE].metrics.registry.get_sample_value
    assert value("tracker_cache_lookups_total", {"result": "negative_hit"}) == 49


def _landing(found: object) -> str | None:
    return found.landing_url if isinstance(found, Program) else None


def _json(update: Program) -> str:
    import json  # noqa: PLC0415

    return json.dumps(update.to_json())
