"""Shipping to Kinesis: partial failures re-sent, a full buffer, the drain on SIGTERM."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import StartTracker
from tests.support.kinesis import wait_for_events
from tests.support.kinesis_proxy import FaultyKinesisProxy
from tests.support.programs import STANDARD, write_programs
from tests.support.proxy import EmulatorProxy
from tests.support.tracker_process import tracker_process
from tests.support.waiting import wait_until
from tracker.app import CORE

pytestmark = pytest.mark.usefixtures("redis_proc")


@pytest.fixture
async def faulty_proxy(kinesalite_url: str) -> AsyncIterator[FaultyKinesisProxy]:
    seen: set[str] = set()

    def fail_a_third_once(record: dict[str, Any]) -> bool:
        key = record["PartitionKey"]
        first_time = key not in seen
        seen.add(key)
        return first_time and int(key, 16) % 3 == 0

    proxy = await FaultyKinesisProxy(kinesalite_url, fail_a_third_once).start()
    yield proxy
    await proxy.close()


async def test_partially_failed_put_records_are_resent_once_each(
    start_tracker: StartTracker,
    faulty_proxy: FaultyKinesisProxy,
    redis_url: str,
    kinesalite_url: str,
    event_stream: str,
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker(AWS_ENDPOINT_URL_KINESIS=faulty_proxy.url)
    for _ in range(200):
        assert (await client.get("/v1/pixel", params={"program": "live"})).status == 200
    events = await wait_for_events(kinesalite_url, event_stream, 200)
    counts = Counter(e.message_id for e in events)
    assert len(counts) == 200
    assert max(counts.values()) == 1
    assert faulty_proxy.failed_entries > 30
    metrics = client.app[CORE].metrics.registry
    assert metrics.get_sample_value("tracker_ship_retried_entries_total") == (
        faulty_proxy.failed_entries
    )
    assert metrics.get_sample_value("tracker_ship_events_shipped_total") == 200


async def test_a_full_memory_buffer_overflows_to_disk_and_loses_nothing(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker(
        SHIP_BUFFER_MAX_EVENTS="5", SHIP_LINGER_MS="10000", SHIP_MAX_IN_FLIGHT="1"
    )
    for _ in range(8):
        response = await client.get("/v1/pixel", params={"program": "live"})
        assert response.status == 200
    # Five fit in memory; the three that did not went to disk, and are shipped from there.
    events = await wait_for_events(kinesalite_url, event_stream, 8)
    assert len({e.message_id for e in events}) == len(events) == 8
    metrics = client.app[CORE].metrics.registry
    for reason in ("buffer_full", "spill_full", "spill_error"):
        assert metrics.get_sample_value("tracker_events_dropped_total", {"reason": reason}) == 0
    await wait_until(
        lambda: metrics.get_sample_value("tracker_spill_replayed_total") == 3,
        what="the three spilled events replayed",
    )
    assert metrics.get_sample_value("tracker_ship_buffer_depth") == 0


async def test_sigterm_drains_every_buffered_event(
    tracker_env: dict[str, str], redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    # A long linger keeps the events in the buffer until SIGTERM forces the drain.
    env = {**tracker_env, "SHIP_LINGER_MS": "8000", "LOG_LEVEL": "INFO"}
    async with tracker_process(env) as tracker, aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.get(f"{tracker.base_url}/v1/pixel?program=live") as response:
                assert response.status == 200
        returncode, output = await tracker.terminate(timeout=30)
    assert returncode == 0, output.decode()
    assert b'"kept_on_disk": 0' in output
    events = await wait_for_events(kinesalite_url, event_stream, 300, timeout=5)
    assert len({e.message_id for e in events}) == len(events) == 300


class GatedKinesisProxy(EmulatorProxy):
    """Holds every PutRecords call until `gate` opens, counting how many wait at once."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.gate = asyncio.Event()
        self.waiting = 0
        self.peak = 0

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if not target.endswith(".PutRecords"):
            return await self.forward(request, body)
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        try:
            await asyncio.wait_for(self.gate.wait(), timeout=10)
            return await self.forward(request, body)
        finally:
            self.waiting -= 1


async def test_backlog_keeps_more_than_one_put_in_flight(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    proxy = await GatedKinesisProxy(kinesalite_url).start()
    try:
        client = await start_tracker(AWS_ENDPOINT_URL_KINESIS=proxy.url, SHIP_LINGER_MS="1")
        for _ in range(3):
            for _ in range(20):
                await client.get("/v1/pixel", params={"program": "live"})
            await asyncio.sleep(0.05)
        await wait_until(lambda: proxy.peak >= 2, timeout=10, what="two PutRecords in flight")
        proxy.gate.set()
        events = await wait_for_events(kinesalite_url, event_stream, 60)
        assert len(events) == 60
    finally:
        await proxy.close()
