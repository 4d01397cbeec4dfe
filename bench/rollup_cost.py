"""What the reporting rollups add to the events consumer: CPU and DynamoDB units per event.

    .venv/bin/python -m bench.rollup_cost [--quick]

The events processor is built in this process twice from the same clients: once as
`consumers events` builds it (`build_events_processor`, lean BatchWriteItem and BatchGetItem,
suppression and rollups), once with the same stores but no rollups (neither the copies check
nor the rollup writer). Tables are made by `consumers.provision.provision` in a moto server (a
process); the per-event calls (BatchWriteItem, BatchGetItem) are answered by the canned endpoint
(bench/canned_dynamodb.py, a thread of this process) and everything else goes on to moto: the
rollup table's consistent GetItem and conditional PutItem are real, as in AWS.

Both get the same batches, as a reader at the stream's tip makes them (one shard's events of
CONSUMER_TIP_WAIT_MS, 2 s): at a billion events a month on 2 shards, 380 events per batch, and ten
times that. The events are the bench's traffic mix (bench/event_sizes.py's kinds and shares),
made in process by the tracker's own EventFactory and ClientFields for the demo program, then
given a message id, the batch's time and a visitor id of their own (32 hex digits, drawn from
a daily audience of ~11 events per visitor). Each batch's events are one tip wait later than
the last batch's, so an item is written by both shards for 15 minutes and then a new one begins.

CPU: `time.thread_time()` around each `process()` call, on this thread only (the canned
endpoint's thread and moto's process are not counted), per event; rounds alternate with and
without rollups (ABAB), and the figures are medians of the rounds, the difference the median of
each pair's difference. Units: every rollup PutItem's item as written (the client is wrapped),
sized by DynamoDB's rules (`bench.event_sizes.item_size`): ceil(size / 1 KB) write units, the
larger of the old and the new item as DynamoDB counts a replacing write; each consistent
GetItem ceil(size / 4 KB) read units (1 for a missing item); the copies check one consistent
read unit per event (event items are under 4 KB).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from bench.bars import verdict
from bench.browser import ADDRESS, USER_AGENT, headers
from bench.canned_dynamodb import canned_dynamodb
from bench.demo_programs import DEMO_PROGRAM_ID, demo_program
from bench.event_sizes import INSTANCE_ID, KINDS, Kind, item_size
from bench.part_cli import run_part
from bench.privacy_cost import client_fields
from bench.privacy_inputs import DAY, STAMP_MS
from consumers.aws import LeanCalls, open_dynamodb, open_lean_calls
from consumers.dead_letters import DeadLetterTable
from consumers.dynamodb_item import Condition, ItemCalls
from consumers.event_items import ItemRules, decode_event
from consumers.events_processor import (
    EventsProcessor,
    EventStores,
    Suppression,
    build_events_processor,
)
from consumers.events_writer import EventsWriter
from consumers.metrics import ConsumerMetrics
from consumers.provision import provision
from consumers.records import StreamRecord
from consumers.rollups.state import RollupState, added, to_item, unseen
from consumers.rollups.tally import RollupKey, fold
from consumers.settings import ConsumerSettings
from consumers.suppression import SuppressionList
from consumers.user_items import UserItems
from tests.support.facts import request_facts
from tracker.devstack.processes import REPO_ROOT, ManagedProcess, free_port
from tracker.devstack.processes import moto_server as moto_process
from tracker.events.builder import EventFactory
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

RESULTS = REPO_ROOT / "bench" / "results"
KIB = 1024
READ_UNIT_BYTES = 4 * KIB
SHARDS = ("shardId-000000000000", "shardId-000000000001")
TIP_SECONDS = 2.0  # CONSUMER_TIP_WAIT_MS' default: a reader at the tip waits this between calls
# A billion events a month (730 h, as docs/capacity.md counts) on the template's 2 shards.
EVENTS_PER_SECOND = 1e9 / (730 * 3600)
BASE_BATCH = round(EVENTS_PER_SECOND / len(SHARDS) * TIP_SECONDS)  # 380
# Distinct visitors a day: ~11 events each at a billion a month (32.9 M events a day), in the
# range of a display campaign's frequency; scaled with the traffic.
EVENTS_PER_VISITOR = 11
WRITE_UNITS_BAR = 0.05  # per event, at the bench's traffic mix (the performance bar)
CPU_BAR_US = 15.0  # consumer CPU per event the rollups may add
FIRST_SEQUENCE = 49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


@dataclass(frozen=True, slots=True)
class Size:
    name: str
    traffic: int  # times a billion events a month
    batches_per_shard: int  # per round: tip waits of the simulated stream


@dataclass(frozen=True, slots=True)
class Amounts:
    pairs: int  # rounds with and without rollups, alternating
    sizes: tuple[Size, ...]


FULL = Amounts(5, (Size("1x: a billion events a month", 1, 30), Size("10x", 10, 4)))
QUICK = Amounts(2, (Size("1x: a billion events a month", 1, 10), Size("10x", 10, 2)))
TINY = Amounts(1, (Size("1x", 1, 2), Size("10x", 10, 1)))


# --- the events ----------------------------------------------------------------------------------


def templates() -> list[tuple[Kind, pb.TrackingEvent]]:
    """One event of each kind of the mix, as the tracker builds it for the demo program."""
    fields = client_fields()
    factory = EventFactory(INSTANCE_ID)
    made = []
    for kind in KINDS:
        url = urlsplit(kind.path)
        params = {k: v for k, v in parse_qsl(url.query) if k != "program"}
        event_type = pb.CLICK if url.path.endswith("/click") else pb.IMPRESSION
        facts = request_facts(
            program_id=DEMO_PROGRAM_ID,
            program=demo_program(),
            timestamp_ms=STAMP_MS,
            event_type=event_type,
            query=params,
            headers=headers(USER_AGENT, *kind.headers),
            address=ADDRESS,
            day=DAY,
        )
        facts.client = fields.fragment(facts)
        _, data = factory.build(factory.outcomes[event_type, pb.OK, pb.IVT_NONE], facts)
        made.append((kind, pb.TrackingEvent.FromString(data)))
    return made


@dataclass
class Feed:
    """The stream as two shards' readers at the tip see it: per shard, one batch per second of
    simulated time, sequence numbers rising; the clock starts at a quarter hour."""

    kinds: list[tuple[Kind, pb.TrackingEvent]] = field(default_factory=templates)
    clock_ms: int = field(default_factory=lambda: int(time.time()) // 900 * 900_000)
    sequences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHARDS, 0))
    rng: random.Random = field(default_factory=lambda: random.Random(20261206))

    def round(self, size: Size) -> list[tuple[str, list[StreamRecord]]]:
        """`size.batches_per_shard` tip waits of the stream, the shards' batches alternating."""
        batches = []
        events = BASE_BATCH * size.traffic
        visitors = round(EVENTS_PER_SECOND * size.traffic * 86_400 / EVENTS_PER_VISITOR)
        for _ in range(size.batches_per_shard):
            for shard in SHARDS:
                batches.append((shard, self._batch(shard, events, visitors)))
            self.clock_ms += round(1000 * TIP_SECONDS)
        return batches

    def _batch(self, shard: str, events: int, visitors: int) -> list[StreamRecord]:
        weights = [kind.share for kind, _ in self.kinds]
        chosen = self.rng.choices([event for _, event in self.kinds], weights, k=events)
        records = []
        for n, event in enumerate(chosen):
            event.message_id = self.rng.randbytes(16).hex()
            event.timestamp_ms = self.clock_ms + n * 1000 // events
            if event.visitor_id:
                event.visitor_id = visitor_id(self.rng.randrange(visitors))
            if event.user_key:
                event.user_key = self.rng.randbytes(16).hex()
            self.sequences[shard] += 1
            sequence = f"{FIRST_SEQUENCE + self.sequences[shard]:056d}"
            records.append(StreamRecord(sequence, event.message_id, event.SerializeToString()))
        return records


def visitor_id(number: int) -> str:
    """Visitor `number`'s id: 32 hex digits, as the tracker's are; a bijection of the number
    (an odd multiplier modulo 2^128), so that distinct visitors have distinct ids."""
    return f"{number * 0x9E3779B97F4A7C15F39CC0605CEDC835 % 2**128:032x}"


# --- the processors ------------------------------------------------------------------------------


class RecordingCalls:
    """The rollup writer's GetItem and PutItem, passing every call on, keeping the items read
    and written: the units are reckoned from them after the timed rounds (keeping a reference
    and reading the clock cost a few microseconds per call, two calls per batch)."""

    def __init__(self, calls: ItemCalls) -> None:
        self._calls = calls
        self.reads: list[dict[str, Any] | None] = []
        self.writes: list[tuple[dict[str, Any], dict[str, Any] | None]] = []  # new, as read
        self._last_read: dict[tuple[str, str], dict[str, Any] | None] = {}
        # This thread's CPU in the rollup table's calls: nothing else runs while the writer
        # waits for them (process() awaits it last), so it is the calls' own work.
        self.call_seconds = 0.0

    def item_calls(self) -> ItemCalls:
        return ItemCalls(self.get, self.put)

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        started = time.thread_time()
        item = await self._calls.get(table, key)
        self.call_seconds += time.thread_time() - started
        self.reads.append(item)
        self._last_read[_key(key)] = item
        return item

    async def put(self, table: str, item: dict[str, Any], condition: Condition) -> bool:
        started = time.thread_time()
        written = await self._calls.put(table, item, condition)
        self.call_seconds += time.thread_time() - started
        self.writes.append((item, self._last_read.get(_key(item))))
        return written

    def clear(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.call_seconds = 0.0


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["program_id"]["S"], item["bucket"]["S"]


@dataclass
class Pair:
    """The processor as built, and the same without rollups, each with its own metrics."""

    with_rollups: EventsProcessor
    without: EventsProcessor
    metrics: ConsumerMetrics  # the one with rollups
    recorder: RecordingCalls


def build_pair(settings: ConsumerSettings, dynamodb: DynamoDBClient, lean: LeanCalls) -> Pair:
    metrics = ConsumerMetrics()
    recorder = RecordingCalls(lean.item)
    recorded = lean._replace(item=recorder.item_calls())
    letters = DeadLetterTable(dynamodb, settings.dead_letter_table, metrics)
    built = build_events_processor(settings, dynamodb, letters, metrics, lean=recorded)
    return Pair(built, without_rollups(settings, dynamodb, lean), metrics, recorder)


def without_rollups(
    settings: ConsumerSettings, dynamodb: DynamoDBClient, lean: LeanCalls
) -> EventsProcessor:
    """What build_events_processor builds, but with no rollups (EventStores.rollups None)."""
    metrics = ConsumerMetrics()
    users = SuppressionList(dynamodb, settings.privacy, metrics)
    events = settings.events_table
    stores = EventStores(
        EventsWriter(dynamodb, events, metrics, None, lean.write),
        DeadLetterTable(dynamodb, settings.dead_letter_table, metrics),
        Suppression(users, UserItems(dynamodb, events)),
    )
    rules = ItemRules(settings.events_ttl_days, settings.events_table_buckets)
    return EventsProcessor(settings.event_stream, stores, metrics, rules)


async def timed(
    processor: EventsProcessor, batches: Sequence[tuple[str, list[StreamRecord]]]
) -> float:
    """CPU seconds of this thread in `process()` over the batches, one after the other as one
    worker's readers hand them over."""
    gc.collect()  # no collection of the previous round's garbage inside this one
    gc.freeze()  # as `consumers events` does once started (consumers/worker.py)
    spent = 0.0
    for shard, records in batches:
        started = time.thread_time()
        await processor.process(shard, records)
        spent += time.thread_time() - started
    return spent


# --- the measurement -----------------------------------------------------------------------------


@dataclass
class Rounds:
    """One size's timed rounds: CPU seconds per round of each processor, and its events."""

    events_per_round: int
    with_rollups: list[float] = field(default_factory=list)
    without: list[float] = field(default_factory=list)


async def measure_size(pair: Pair, feed: Feed, size: Size, pairs: int) -> dict[str, Any]:
    """One untimed round of each (connections, the first item of the bucket), then `pairs`
    rounds of each, alternating which goes first; every round's batches are new."""
    warm = feed.round(size)
    await timed(pair.with_rollups, warm)
    await timed(pair.without, warm)
    pair.recorder.clear()
    attempts_before = _attempts(pair.metrics)
    rounds = Rounds(sum(len(records) for _, records in warm))
    last = warm
    for number in range(pairs):
        last = feed.round(size)
        order = [pair.with_rollups, pair.without]
        for processor in order if number % 2 == 0 else order[::-1]:
            spent = await timed(processor, last)
            kept = rounds.with_rollups if processor is pair.with_rollups else rounds.without
            kept.append(spent)
    attempts = _attempts(pair.metrics) - attempts_before
    events = rounds.events_per_round * pairs
    return {
        "size": size.name,
        "events_per_batch": BASE_BATCH * size.traffic,
        "batches_per_shard_per_round": size.batches_per_shard,
        "shards": len(SHARDS),
        "pairs": pairs,
        "events_per_round": rounds.events_per_round,
        "cpu_us_per_event": cpu_summary(rounds),
        "units": units(pair.recorder, attempts, events),
        "breakdown_us_per_event": {
            # The rollup table's GetItem and PutItem through botocore, per event.
            "rollup_calls": round(1e6 * pair.recorder.call_seconds / events, 2),
            # What consumers/rollups does alone, without I/O, on the last round's batches.
            **pure_cost(last),
        },
        "conflicts": _counter(pair.metrics, "consumer_rollup_conflicts_total"),
    }


def pure_cost(batches: Sequence[tuple[str, list[StreamRecord]]]) -> dict[str, float]:
    """CPU per event of the rollups' own work on `batches`: folding the events per item
    (tally.fold), and adding them to a state (unseen, added: the sketch) and making the item
    (to_item), one state per item as the writer keeps it."""
    decoded = [
        (shard, [(decode_event(r.data), r.sequence_number) for r in records])
        for shard, records in batches
    ]
    events = sum(len(pairs) for _, pairs in decoded)
    started = time.thread_time()
    groups = [(shard, fold(pairs)) for shard, pairs in decoded]
    folded = time.thread_time()
    states: dict[RollupKey, RollupState] = {}
    for shard, group in groups:
        for key, counted in group.items():
            state = states.get(key, RollupState())
            states[key] = added(state, shard, unseen(state, shard, counted))
            to_item(key, states[key])
    done = time.thread_time()
    return {
        "fold": round(1e6 * (folded - started) / events, 2),
        "add_and_item": round(1e6 * (done - folded) / events, 2),
    }


def cpu_summary(rounds: Rounds) -> dict[str, Any]:
    def per_event(seconds: float) -> float:
        return 1e6 * seconds / rounds.events_per_round

    with_us = [per_event(s) for s in rounds.with_rollups]
    without_us = [per_event(s) for s in rounds.without]
    added = [a - b for a, b in zip(with_us, without_us, strict=True)]
    return {
        "with_rollups": round(statistics.median(with_us), 2),
        "without_rollups": round(statistics.median(without_us), 2),
        "added": round(statistics.median(added), 2),
        "rounds_with": [round(x, 2) for x in with_us],
        "rounds_without": [round(x, 2) for x in without_us],
    }


def units(recorder: RecordingCalls, attempts: float, events: int) -> dict[str, Any]:
    """Write and read units of the timed rounds' rollup calls (`attempts`: the writes and the
    conflicts counted, every one a PutItem that costs its units), and the copies check's."""
    sizes = [item_size(new) for new, _ in recorder.writes]
    table_units = sum(
        math.ceil(max(item_size(new), item_size(old) if old else 0) / KIB)
        for new, old in recorder.writes
    )
    # The `changes` index (projection ALL, sort key updated_ms) moves its entry on every write:
    # the old entry is deleted and the new one put, each at its item's size.
    index_units = sum(
        math.ceil(item_size(new) / KIB) + (math.ceil(item_size(old) / KIB) if old else 0)
        for new, old in recorder.writes
    )
    write_units = table_units + index_units
    read_units = sum(
        max(1, math.ceil(item_size(item) / READ_UNIT_BYTES)) if item else 1
        for item in recorder.reads
    )
    if attempts != len(recorder.writes):
        raise RuntimeError(f"{attempts} rollup writes counted, {len(recorder.writes)} PutItem seen")
    return {
        "events": events,
        "rollup_writes": len(sizes),
        "events_per_write": round(events / len(sizes), 1) if sizes else None,
        "item_bytes_median": round(statistics.median(sizes)) if sizes else None,
        "item_bytes_max": max(sizes, default=None),
        "write_units_per_event": round(write_units / events, 5),
        "table_write_units_per_event": round(table_units / events, 5),
        "index_write_units_per_event": round(index_units / events, 5),
        "rollup_read_units_per_event": round(read_units / events, 5),
        "copies_read_units_per_event": 1.0,  # one consistent read per event, items under 4 KB
        "read_units_per_event": round(1.0 + read_units / events, 5),
    }


def _attempts(metrics: ConsumerMetrics) -> float:
    """Rollup PutItems sent: those that were written and those that lost to another writer."""
    return _counter(metrics, "consumer_rollup_writes_total") + _counter(
        metrics, "consumer_rollup_conflicts_total"
    )


def _counter(metrics: ConsumerMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


@contextmanager
def moto() -> Iterator[str]:
    """A moto server of its own (DynamoDB, and Kinesis for provision's streams)."""
    process: ManagedProcess = moto_process(free_port())
    process.start()
    try:
        yield f"http://127.0.0.1:{process.port}"
    finally:
        process.stop()


def consumer_settings(dynamodb_url: str, kinesis_url: str) -> ConsumerSettings:
    # No Redis: the events processor uses none (REDIS_URL keeps its default, never connected).
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # moto accepts any
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_KINESIS": kinesis_url,
        "LOG_LEVEL": "WARNING",
    }
    # The lean calls find credentials as botocore does: here, in the environment.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, env[name])
    return ConsumerSettings.from_env(env)


async def measure_all(moto_url: str, canned_url: str, amounts: Amounts) -> list[dict[str, Any]]:
    await provision(consumer_settings(moto_url, moto_url))
    settings = consumer_settings(canned_url, moto_url)
    feed = Feed()
    results = []
    async with AsyncExitStack() as stack:
        dynamodb = await open_dynamodb(settings, stack)
        lean = await open_lean_calls(dynamodb, stack)
        for size in amounts.sizes:
            pair = build_pair(settings, dynamodb, lean)
            results.append(await measure_size(pair, feed, size, amounts.pairs))
    return results


def measure(amounts: Amounts) -> dict[str, Any]:
    """Every size of `amounts`, with the bars checked at the first (the bench's traffic)."""
    with moto() as moto_url, canned_dynamodb(moto_url) as canned:
        sizes = asyncio.run(measure_all(moto_url, canned.url, amounts))
    first = sizes[0]
    added_us = first["cpu_us_per_event"]["added"]
    write_units = first["units"]["write_units_per_event"]
    return {
        "sizes": sizes,
        "bars": {
            "write_units_per_event": {
                "measured": write_units,
                "bar": WRITE_UNITS_BAR,
                "holds": write_units <= WRITE_UNITS_BAR,
            },
            "cpu_us_per_event": {
                "measured": added_us,
                "bar": CPU_BAR_US,
                "holds": added_us <= CPU_BAR_US,
            },
        },
    }


def summary(part: dict[str, Any]) -> str:
    lines = []
    for row in part["sizes"]:
        cpu, units_ = row["cpu_us_per_event"], row["units"]
        lines.append(
            f"{row['size']} ({row['events_per_batch']} events per batch): CPU per event "
            f"{cpu['with_rollups']} us with rollups, {cpu['without_rollups']} without, "
            f"added {cpu['added']}; {units_['write_units_per_event']} WRU and "
            f"{units_['read_units_per_event']} RRU per event "
            f"({units_['events_per_write']} events per write of {units_['item_bytes_median']} B)"
        )
        parts = row["breakdown_us_per_event"]
        lines.append(
            f"  of the added CPU: rollup GetItem + PutItem {parts['rollup_calls']} us, fold "
            f"{parts['fold']}, add + item {parts['add_and_item']}; the copies check and the "
            f"rest {round(cpu['added'] - sum(parts.values()), 2)}"
        )
    for name, bar in part["bars"].items():
        lines.append(f"bar {name} <= {bar['bar']}: {bar['measured']} ({verdict(bar['holds'])})")
    return "\n".join(lines)


def main() -> None:
    run_part(__doc__, "fewer and shorter rounds", measure, summary, (FULL, QUICK))


if __name__ == "__main__":
    main()
