"""The event lake with real processes: `tracker serve` answering tagged pixels, kinesalite,
`consumers events` into moto and `consumers lake` into an Iceberg table (SQLite catalog, file
warehouse). A lake worker SIGKILLed in the middle of a commit, the stream delivered twice, two
workers committing one shard, and an erasure followed by `lake maintain`: each answered event
is one row, read back with pyiceberg and with DuckDB through `consumers lake query`."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest
from pyiceberg.table import Table

from consumers.lake.catalog import open_catalog, open_table
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    poll_until,
    provisioned,
    put_records,
    run_privacy,
    stored_message_ids,
)
from tests.support.kinesis import read_records
from tests.support.lake_race import race_on_one_shard
from tests.support.programs import program, write_programs
from tests.support.tracker_process import tracker_process
from tests.support.workers import Workers
from tracker.devstack.processes import ManagedProcess
from tracker.privacy.keys import user_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
SECRET = "lake-test-user-id-key-0123456789abcdef"
PIXELS = 1500
KILL_ROUNDS = 8


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    environment = consumer_env(kinesalite_url, moto_url, redis_url, shards=2)
    environment["USER_ID_KEY"] = SECRET
    environment["SUPPRESSION_CACHE_SECONDS"] = "1"
    environment["ERASE_MARGIN_SECONDS"] = "1"
    await provisioned(environment)
    await write_programs(redis_url, [program("shop")])
    return environment


def lake_table(env: dict[str, str]) -> Table:
    settings = ConsumerSettings.from_env(env).lake
    return open_table(open_catalog(settings), settings)


def lake_ids(env: dict[str, str]) -> Counter[str]:
    """message_id -> rows, read with pyiceberg."""
    rows = lake_table(env).scan(selected_fields=("message_id",)).to_arrow()
    return Counter(rows.column("message_id").to_pylist())


def lake_query(env: dict[str, str], sql: str) -> list[dict[str, str]]:
    """`consumers lake query SQL --format csv` as a process."""
    done = subprocess.run(
        [sys.executable, "-m", "consumers", "lake", "query", sql, "--format", "csv"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(csv.DictReader(io.StringIO(done.stdout)))


def warehouse_files(env: dict[str, str], suffix: str = ".parquet") -> set[Path]:
    root = Path(env["LAKE_DIR"]) / "warehouse"
    return {path for path in root.rglob(f"*{suffix}") if path.is_file()}


def referenced_data_files(env: dict[str, str]) -> set[Path]:
    return {
        Path(task.file.file_path.removeprefix("file://"))
        for task in lake_table(env).scan().plan_files()
    }


async def send_pixels(base_url: str, count: int, tag: str) -> int:
    """Tagged pixels from distinct people, ten at a time; how many were answered."""
    answered = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def one(index: int) -> None:
            nonlocal answered
            url = f"{base_url}/v1/pixel?program=shop&tag={tag}&n={index}"
            headers = {"User-Agent": f"{BROWSER} person/{index}"}
            async with session.get(url, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    answered += 1

        for start in range(0, count, 10):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 10, count))))
            await asyncio.sleep(0.005)
    return answered


async def kill_mid_commit(workers: Workers, name: str, env: dict[str, str]) -> bool:
    """Start a lake worker, SIGKILL it the moment a new data file appears (written, commit not
    yet done); True when that file is indeed referenced by no snapshot afterwards."""
    before = warehouse_files(env)
    worker: ManagedProcess = workers.start(name, "lake")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = warehouse_files(env) - before
        if new:
            worker.kill()
            return bool(new - referenced_data_files(env))
        await asyncio.sleep(0.002)
    worker.kill()
    return False


async def test_every_answered_event_is_one_row_through_kills_mid_commit_and_redelivery(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str, tmp_path: Path
) -> None:
    workers.start("events")
    tracker_env = {**env, "SPILL_DIR": str(tmp_path / "spill"), "SHIP_LINGER_MS": "20"}
    async with tracker_process(tracker_env) as tracker:
        load = asyncio.create_task(send_pixels(tracker.base_url, PIXELS, "lake-e2e"))
        caught = False
        for round_number in range(KILL_ROUNDS):
            caught = await kill_mid_commit(workers, f"lake-{round_number}", env) or caught
            if caught and round_number >= 1:
                break
        answered = await load
        status, _ = await tracker.terminate(timeout=30)
        assert status == 0
    assert caught, "no lake worker was killed between writing a data file and its commit"
    assert answered == PIXELS
    workers.start("lake-final", "lake")
    # Every record again, on any shard: the copies must not become rows.
    records = await read_records(kinesalite_url, env["EVENT_STREAM"])
    await put_records(kinesalite_url, env["EVENT_STREAM"], records)
    items = await poll_until(
        lambda: stored_message_ids(moto_url, env["EVENTS_TABLE"]),
        lambda found: len(found) >= answered,
        timeout=90,
        what="the DynamoDB items",
    )
    wanted = set(items)
    assert len(wanted) == answered

    async def rows() -> Counter[str]:
        return await asyncio.to_thread(lake_ids, env)

    await poll_until(rows, lambda found: set(found) >= wanted, timeout=90, what="the lake rows")
    await asyncio.sleep(3)  # three more commits: a late duplicate would show now
    found = await rows()
    assert set(found) == wanted
    assert max(found.values()) == 1
    queried = await asyncio.to_thread(
        lake_query, env, "SELECT message_id, params['tag'] AS tag FROM events"
    )
    assert Counter(row["message_id"] for row in queried) == found
    assert {row["tag"] for row in queried} == {"lake-e2e"}


def tagged_events(count: int, users: list[str]) -> list[bytes]:
    """Impressions of `users` in turn (user_key as the tracker hashes their uid)."""
    now_ms = int(time.time() * 1000)
    return [
        pb.TrackingEvent(
            programid="shop",
            message_id=os.urandom(16).hex(),
            event_type=pb.IMPRESSION,
            timestamp_ms=now_ms + index,
            validation=pb.OK,
            is_valid=True,
            billable=True,
            user_key=user_key(SECRET.encode(), users[index % len(users)]),
            user_agent=BROWSER,
        ).SerializeToString()
        for index in range(count)
    ]


async def test_an_erased_user_is_in_no_file_of_the_warehouse_after_maintain(
    env: dict[str, str], workers: Workers, kinesalite_url: str
) -> None:
    workers.start("lake-a", "lake")
    users = ["alice", "bob", "carol"]
    for _ in range(4):  # four commits: the user's rows are in several files
        await put_records(kinesalite_url, env["EVENT_STREAM"], tagged_events(30, users))
        await asyncio.sleep(1.5)
    await poll_until(
        lambda: asyncio.to_thread(lambda: sum(lake_ids(env).values())),
        lambda total: total == 120,
        what="120 rows",
    )
    erased = await asyncio.to_thread(run_privacy, env, "erase", "alice")
    assert erased.returncode == 0, erased.stderr
    maintained = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "consumers", "lake", "maintain"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert maintained.returncode == 0, maintained.stderr
    alice = user_key(SECRET.encode(), "alice")
    keys: Counter[str] = Counter()
    files = warehouse_files(env)
    assert files
    for path in files:
        keys.update(pq.read_table(path, columns=["user_key"]).column("user_key").to_pylist())
    assert alice not in keys
    assert keys == Counter({user_key(SECRET.encode(), u): 40 for u in ("bob", "carol")})
    for path in warehouse_files(env, "") - files:  # manifests, metadata: no trace either
        assert alice.encode() not in path.read_bytes()


async def test_two_workers_committing_one_shard_store_each_record_once(
    env: dict[str, str], kinesalite_url: str
) -> None:
    """Two lake workers that both hold the only shard (a lease stolen while its holder still
    reads and commits): both commit, neither commits a record the other did."""
    events = tagged_events(3000, ["dave"])
    env_one = {**env, "EVENT_STREAM": env["EVENT_STREAM"] + "-one"}
    await provisioned({**env_one, "EVENT_STREAM_SHARDS": "1"})
    outcomes = await race_on_one_shard(kinesalite_url, env_one, events)
    found = await asyncio.to_thread(lake_ids, env_one)
    assert len(found) == 3000
    assert max(found.values()) == 1
    assert all(outcome.rows > 0 for outcome in outcomes), outcomes
    assert all(outcome.copies > 0 for outcome in outcomes), outcomes
