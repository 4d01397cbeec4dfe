"""Exactly-once rollups end to end, with real processes: a tagged load of pixels, clicks and
events (billable, crawlers, unknown and inactive programs) through a real `tracker serve` into
kinesalite, read by two `consumers events` processes into moto, one SIGKILLed mid-load and
replaced; then every checkpoint rewound to the start of the stream and a share of the events
put on the stream a second time, as the tracker's retries and replays do. Every counter must
equal the distinct stored items it counts, and every answered request must be stored."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from tests.support.consumers import consumer_env, provisioned, put_records, scan_table
from tests.support.kinesis import read_records
from tests.support.programs import STANDARD, write_programs
from tests.support.tracker_process import tracker_process
from tests.support.workers import Workers
from tests.test_consumer_workers import wait_owners
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
# (path with its query, user agent): the mix of the load, cycled
REQUESTS = [
    ("/v1/pixel?program=live", BROWSER),
    ("/v1/pixel?program=live", BROWSER),
    ("/v1/click?program=live", BROWSER),
    ("/event/live", BROWSER),
    ("/v1/pixel?program=live", CRAWLER),
    ("/v1/pixel?program=off", BROWSER),
    ("/v1/pixel?program=ghost-{n}", BROWSER),
]
NAMES = {"IMPRESSION": "impressions", "CLICK": "clicks", "EVENT": "events"}


class MixedLoad:
    """Tagged requests of every kind; a tag counts only once its answer arrived in full."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self._base = base_url
        self._session = session
        self._tags = itertools.count()
        self.answered: set[str] = set()

    async def run(self, seconds: float, connections: int = 6) -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(self._client(deadline) for _ in range(connections)))

    async def _client(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            n = next(self._tags)
            path, agent = REQUESTS[n % len(REQUESTS)]
            separator = "&" if "?" in path else "?"
            url = f"{self._base}{path.format(n=n)}{separator}tag={n}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                headers = {"User-Agent": agent}
                async with self._session.get(url, headers=headers, allow_redirects=False) as r:
                    await r.read()
                    if r.status in (200, 302):
                        self.answered.add(str(n))
            await asyncio.sleep(0.01)


def expected_counts(items: list[dict[str, Any]]) -> Counter[str]:
    """The counters, computed independently from the stored items themselves."""
    counts: Counter[str] = Counter()
    for item in items:
        kind = NAMES[item["event_type"]["S"]]
        counts[kind] += 1
        counts[f"validation.{item['validation']['S']}"] += 1
        if item["ivt"]["S"] != "IVT_NONE":
            counts[f"ivt.{item['ivt']['S']}"] += 1
        if item["billable"]["BOOL"] and kind != "events":
            counts[f"billable_{kind}"] += 1
    return counts


def rollup_counts(items: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in items:
        counts.update({k: int(v["N"]) for k, v in item["counts"]["M"].items()})
    return counts


async def counted_when_settled(
    moto_url: str, env: dict[str, str], answered: set[str], timeout: float = 90
) -> tuple[Counter[str], Counter[str], list[dict[str, Any]]]:
    """(rollup counters, counters of the stored items, stored items), once every answered tag is
    stored and the counters have matched twice in a row or time is up."""
    deadline = time.monotonic() + timeout
    previous: Counter[str] | None = None
    while True:
        items = await scan_table(moto_url, env["EVENTS_TABLE"])
        rollups = rollup_counts(await scan_table(moto_url, env["ROLLUP_TABLE"]))
        tags = {i["params"]["M"]["tag"]["S"] for i in items if "params" in i}
        settled = tags >= answered and rollups == expected_counts(items) == previous
        if settled or time.monotonic() > deadline:
            return rollups, expected_counts(items), items
        previous = rollups if tags >= answered else None
        await asyncio.sleep(1.0)


async def rewind_checkpoints(moto_url: str, env: dict[str, str]) -> None:
    """Every shard read again from the start: the whole stream delivered a second time."""
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as dynamodb:
        for lease in await scan_table(moto_url, env["LEASE_TABLE"]):
            await dynamodb.update_item(
                TableName=env["LEASE_TABLE"],
                Key={"lease_key": lease["lease_key"]},
                UpdateExpression="SET #c = :start REMOVE #o",
                ExpressionAttributeNames={"#c": "checkpoint", "#o": "owner"},
                ExpressionAttributeValues={":start": {"S": "TRIM_HORIZON"}},
            )


async def wait_checkpoints_past(
    moto_url: str, env: dict[str, str], last: dict[str, str], timeout: float = 60
) -> None:
    """Until every shard's checkpoint is at or past `last[shard]` (sequence numbers)."""
    deadline = time.monotonic() + timeout
    while True:
        leases = await scan_table(moto_url, env["LEASE_TABLE"])
        done = {
            lease["lease_key"]["S"].rsplit("/", 1)[-1]: lease["checkpoint"]["S"]
            for lease in leases
            if lease["checkpoint"]["S"].isdigit()
        }
        if all(int(done.get(shard, "0")) >= int(seq) for shard, seq in last.items()):
            return
        assert time.monotonic() < deadline, f"checkpoints {done}, wanted past {last}"
        await asyncio.sleep(0.5)


async def copies_of(kinesalite_url: str, stream: str, wanted: set[str]) -> list[bytes]:
    """The records' data of the events `wanted`, byte for byte as the stream holds them."""
    records = await read_records(kinesalite_url, stream)
    return [data for data in records if pb.TrackingEvent.FromString(data).message_id in wanted]


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    environment = consumer_env(kinesalite_url, moto_url, redis_url, shards=2)
    await provisioned(environment)
    await write_programs(redis_url, STANDARD)
    return environment


async def test_every_counter_equals_the_distinct_stored_events(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str, tmp_path: Any
) -> None:
    workers.start("a")
    victim = workers.start("b")
    await wait_owners(moto_url, env, {"a": 1, "b": 1})
    tracker_env = {**env, "SPILL_DIR": str(tmp_path / "spill"), "SHIP_LINGER_MS": "20"}
    async with (
        tracker_process(tracker_env) as tracker,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        load = MixedLoad(tracker.base_url, session)
        running = asyncio.create_task(load.run(seconds=10))
        await asyncio.sleep(4)
        victim.kill()  # SIGKILL mid-load: no checkpoint, no lease release
        workers.start("c")  # its replacement
        await running
        status, _ = await tracker.terminate(timeout=30)  # SIGTERM: it ships what it answered
        assert status == 0
    assert len(load.answered) > 500
    rollups, expected, items = await counted_when_settled(moto_url, env, load.answered)
    assert {i["params"]["M"]["tag"]["S"] for i in items} >= load.answered
    assert rollups == expected
    assert {"ivt.IVT_KNOWN_CRAWLER", "validation.UNKNOWN_PROGRAM", "validation.INACTIVE"} <= set(
        rollups
    )

    # Redelivered on purpose: the whole stream again, and a share of it as new records.
    for process in workers.started:
        process.stop()
    await rewind_checkpoints(moto_url, env)
    wanted = {i["message_id"]["S"] for i in items if int(i["params"]["M"]["tag"]["S"]) % 5 == 0}
    copies = await copies_of(kinesalite_url, env["EVENT_STREAM"], wanted)
    assert len(copies) == len(wanted)
    put = await put_records(kinesalite_url, env["EVENT_STREAM"], copies)
    last = {
        r["ShardId"]: max(
            (x["SequenceNumber"] for x in put if x["ShardId"] == r["ShardId"]), key=int
        )
        for r in put
    }
    workers.start("d")
    await wait_checkpoints_past(moto_url, env, last)
    again, expected_again, items_again = await counted_when_settled(moto_url, env, load.answered)
    assert len(items_again) == len(items)
    assert again == expected_again == expected
