"""Consumer workers as real processes sharing a stream through DynamoDB leases."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from consumers.aws import open_clients
from consumers.coordinator import Coordinator
from consumers.leases import HeldLease, LeaseTable
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from consumers.shard_reader import ShardReader, StreamWork
from tests.conftest import StartTracker
from tests.support.consumers import (
    consumer_env,
    make_events,
    message_ids,
    provisioned,
    put_records,
    scan_table,
    stored_message_ids,
)
from tests.support.kinesis import kinesis_client
from tests.support.programs import program
from tests.support.waiting import wait_until
from tests.support.workers import Workers
from tracker.app import CORE
from tracker.programs.model import Program

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    environment = consumer_env(kinesalite_url, moto_url, redis_url, shards=4)
    await provisioned(environment)
    return environment


async def lease_owners(moto_url: str, env: dict[str, str]) -> Counter[str | None]:
    leases = await scan_table(moto_url, env["LEASE_TABLE"])
    return Counter(
        item["owner"]["S"] if "owner" in item else None
        for item in leases
        if item["stream"]["S"] == env["EVENT_STREAM"]
    )


async def wait_owners(
    moto_url: str, env: dict[str, str], expected: dict[str, int], timeout: float = 30
) -> None:
    """Wait until the leases are held exactly as expected."""
    deadline = time.monotonic() + timeout
    while (owners := await lease_owners(moto_url, env)) != Counter(expected):
        assert time.monotonic() < deadline, f"lease owners {dict(owners)}, wanted {expected}"
        await asyncio.sleep(0.2)


async def wait_stored(
    moto_url: str, table: str, wanted: set[str], timeout: float = 60
) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        stored = await stored_message_ids(moto_url, table)
        if set(stored) >= wanted or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(0.3)


async def test_one_worker_persists_every_shard(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str
) -> None:
    events = make_events(400)
    await put_records(kinesalite_url, env["EVENT_STREAM"], events)
    workers.start("solo")
    stored = await wait_stored(moto_url, env["EVENTS_TABLE"], message_ids(events))
    assert set(stored) == message_ids(events)
    assert set(stored.values()) == {1}
    item = (await scan_table(moto_url, env["EVENTS_TABLE"]))[0]
    assert {
        "message_id",
        "program_id",
        "event_type",
        "timestamp_ms",
        "is_valid",
        "validation",
    } <= set(item)
    assert item["event_type"] == {"S": "IMPRESSION"}
    assert item["validation"] == {"S": "OK"}
    await wait_owners(moto_url, env, {"solo": 4})


async def test_two_workers_share_four_shards(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str
) -> None:
    workers.start("a")
    await wait_owners(moto_url, env, {"a": 4})
    workers.start("b")
    await wait_owners(moto_url, env, {"a": 2, "b": 2})
    events = make_events(400)
    await put_records(kinesalite_url, env["EVENT_STREAM"], events)
    stored = await wait_stored(moto_url, env["EVENTS_TABLE"], message_ids(events))
    assert set(stored) == message_ids(events)


async def test_sigkill_of_a_worker_mid_stream_loses_and_duplicates_nothing(
    env: dict[str, str],
    workers: Workers,
    kinesalite_url: str,
    moto_url: str,
) -> None:
    workers.start("a")
    await wait_owners(moto_url, env, {"a": 4})
    victim = workers.start("b")
    await wait_owners(moto_url, env, {"a": 2, "b": 2})
    batches = [make_events(150) for _ in range(8)]
    for index, batch in enumerate(batches):
        await put_records(kinesalite_url, env["EVENT_STREAM"], batch)
        if index == 3:
            victim.kill()  # SIGKILL: no checkpoint, no lease release
            killed_at = time.monotonic()
        await asyncio.sleep(0.2)
    await wait_owners(moto_url, env, {"a": 4}, timeout=30)
    takeover = time.monotonic() - killed_at
    wanted = set().union(*(message_ids(batch) for batch in batches))
    stored = await wait_stored(moto_url, env["EVENTS_TABLE"], wanted)
    assert set(stored) == wanted
    assert sum(stored.values()) == len(wanted) == 1200
    print(f"takeover: the survivor held all leases {takeover:.1f}s after the SIGKILL")  # noqa: T201


async def test_sigterm_checkpoints_and_releases_leases(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str
) -> None:
    worker = workers.start("a")
    await wait_owners(moto_url, env, {"a": 4})
    events = make_events(100)
    await put_records(kinesalite_url, env["EVENT_STREAM"], events)
    await wait_stored(moto_url, env["EVENTS_TABLE"], message_ids(events))
    assert worker.stop(timeout=20) == 0
    leases = await scan_table(moto_url, env["LEASE_TABLE"])
    assert all("owner" not in lease for lease in leases)
    assert all(lease["checkpoint"]["S"] != "TRIM_HORIZON" for lease in leases)
    # A successor starts from those checkpoints: nothing is written again.
    rewritten_before = await scan_table(moto_url, env["EVENTS_TABLE"])
    workers.start("b")
    await wait_owners(moto_url, env, {"b": 4})
    assert len(await scan_table(moto_url, env["EVENTS_TABLE"])) == len(rewritten_before)


class RecordingProcessor:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (shard id, partition key) in processing order

    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        self.seen.extend((shard_id, r.partition_key) for r in records)


async def test_split_shard_children_are_read_after_their_parent(
    kinesalite_url: str, moto_url: str, redis_url: str
) -> None:
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    settings = await provisioned(env)
    stream = settings.event_stream
    payloads = make_events(60)
    await put_records(kinesalite_url, stream, payloads[:30], [f"parent-{i}" for i in range(30)])
    await split_first_shard(kinesalite_url, stream)
    await put_records(kinesalite_url, stream, payloads[30:], [f"child-{i}" for i in range(30)])
    recorder = RecordingProcessor()
    async with _coordinator(settings, kinesalite_url, moto_url, recorder) as coordinator:
        await wait_until(lambda: len(recorder.seen) >= 60, timeout=30, what="60 records")
        keys = [key for _, key in recorder.seen]
        last_parent = max(i for i, key in enumerate(keys) if key.startswith("parent-"))
        first_child = min(i for i, key in enumerate(keys) if key.startswith("child-"))
        assert last_parent < first_child
        assert keys[:30] == [f"parent-{i}" for i in range(30)]
        assert {shard for shard, key in recorder.seen if key.startswith("child-")} == {
            "shardId-000000000001",
            "shardId-000000000002",
        }
        await wait_until(
            lambda: coordinator.held_shards == ["shardId-000000000001", "shardId-000000000002"]
        )
    leases = {i["shard_id"]["S"]: i for i in await scan_table(moto_url, settings.lease_table)}
    assert leases["shardId-000000000000"]["checkpoint"]["S"] == "SHARD_END"
    assert set(leases["shardId-000000000001"]["parents"]["SS"]) == {"shardId-000000000000"}


async def test_a_split_while_running_is_discovered_and_read_in_order(
    kinesalite_url: str, moto_url: str, redis_url: str
) -> None:
    settings = await provisioned(consumer_env(kinesalite_url, moto_url, redis_url, shards=1))
    stream = settings.event_stream
    payloads = make_events(40)
    recorder = RecordingProcessor()
    async with _coordinator(settings, kinesalite_url, moto_url, recorder) as coordinator:
        await put_records(kinesalite_url, stream, payloads[:20], [f"parent-{i}" for i in range(20)])
        await wait_until(lambda: len(recorder.seen) == 20, timeout=30, what="parent records")
        await split_first_shard(kinesalite_url, stream)
        await put_records(kinesalite_url, stream, payloads[20:], [f"child-{i}" for i in range(20)])
        await wait_until(lambda: len(recorder.seen) == 40, timeout=30, what="child records")
        assert [key for _, key in recorder.seen[:20]] == [f"parent-{i}" for i in range(20)]
        assert all(shard != "shardId-000000000000" for shard, _ in recorder.seen[20:])
        children = ["shardId-000000000001", "shardId-000000000002"]
        await wait_until(lambda: coordinator.held_shards == children, what="children held")


async def split_first_shard(kinesalite_url: str, stream: str) -> None:
    async with kinesis_client(kinesalite_url) as kinesis:
        await kinesis.split_shard(
            StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
        )
        for _ in range(100):
            summary = await kinesis.describe_stream_summary(StreamName=stream)
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the split stream did not become active")


class _coordinator:  # noqa: N801 (used as `async with _coordinator(...)`)
    """An in-process events coordinator whose readers feed a given processor."""

    def __init__(
        self,
        settings: ConsumerSettings,
        kinesalite_url: str,
        moto_url: str,
        processor: RecordingProcessor,
    ) -> None:
        self._settings = settings
        self._urls = (kinesalite_url, moto_url)
        self._processor = processor

    async def __aenter__(self) -> Coordinator:
        self._stack = AsyncExitStack()
        kinesis, dynamodb = await open_clients(self._settings, self._stack)
        metrics = ConsumerMetrics()
        stream = self._settings.event_stream

        work = StreamWork(kinesis, stream, self._processor, metrics, 0.1)

        def start_reader(held: HeldLease, stopping: asyncio.Event) -> asyncio.Task[None]:
            return asyncio.create_task(ShardReader(work, held, stopping).run())

        table = LeaseTable(dynamodb, self._settings.lease_table, stream)
        self._coordinator = Coordinator(work, table, self._settings.leases, start_reader)
        self._task = asyncio.create_task(self._coordinator.run())
        return self._coordinator

    async def __aexit__(self, *exc: object) -> None:
        self._coordinator.stop()
        await self._task
        await self._stack.aclose()


async def test_published_programs_reach_a_running_tracker(
    start_tracker: StartTracker,
    redis_url: str,
    kinesalite_url: str,
    moto_url: str,
    tmp_path: Path,
) -> None:
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    await provisioned(env)
    pool = Workers(env)
    pool.start("programs-1", kind="programs")
    try:
        client = await start_tracker()
        cache = client.app[CORE].cache
        await _publish(env, tmp_path, [program("p9", version=2, landing_url="https://v2.example/")])
        await wait_until(lambda: _landing(cache.get("p9")) == "https://v2.example/", timeout=15)
        response = await client.get("/v1/click", params={"program": "p9"}, allow_redirects=False)
        assert response.headers["Location"] == "https://v2.example/"
        # An older version published later is refused by Redis and never reaches the tracker.
        await _publish(
            env,
            tmp_path,
            [
                program("p9", version=1, landing_url="https://v1.example/"),
                program("marker", version=1),
            ],
        )
        await wait_until(lambda: cache.get("marker") is not None, timeout=15)
        assert _landing(cache.get("p9")) == "https://v2.example/"
        cache.clear()
        response = await client.get("/v1/click", params={"program": "p9"}, allow_redirects=False)
        assert response.headers["Location"] == "https://v2.example/"
    finally:
        pool.kill_all()


async def _publish(env: dict[str, str], tmp_path: Path, programs: list[dict[str, object]]) -> None:
    path = tmp_path / f"programs-{os.urandom(3).hex()}.json"
    path.write_text(json.dumps(programs))
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "programs", "publish", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _landing(found: object) -> str | None:
    return found.landing_url if isinstance(found, Program) else None


async def test_a_worker_serves_healthz_and_metrics_on_its_port(
    env: dict[str, str], workers: Workers, moto_url: str
) -> None:
    worker = workers.start("a")
    await wait_owners(moto_url, env, {"a": 4})
    base = f"http://127.0.0.1:{worker.port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert len((await response.json())["shards"]) == 4
        async with session.get(f"{base}/metrics") as response:
            assert "consumer_leases_held 4.0" in await response.text()
