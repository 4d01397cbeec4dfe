"""What conversion attribution costs the events consumer: DynamoDB calls and units per conversion
and per click, their dollars, and CPU per conversion.

    .venv/bin/python -m bench.attribution_cost [--quick]

The events processor is built as `consumers events` builds it (`build_events_processor` with
lean calls from `open_lean_calls`) against a moto server of its own (a process), tables made by
`consumers.provision.provision`, every call through a pass-through endpoint on a thread that
keeps connections open as DynamoDB does (moto closes each after one answer). A second processor
is the same object with no attribution (EventStores.attribution None: the copies check and the
rollups stay). Every lean call of both (BatchGetItem, BatchWriteItem, GetItem, PutItem) passes
through a recorder that keeps its request and answer (only the calls made for the processor
with attribution are charged); the matcher (`build_matcher`, with the lean calls as workers
give it) also gets a botocore client whose Query, UpdateItem and DeleteItem are recorded. Calls
are classed by table (attribution, events, rollups) and charged to whom they are for: a click
record to its click, a marker to its winner, a parked record and a PENDING item to their
conversion, a BatchGetItem's key to the conversions of the batch that name it, the copy check's
keys evenly to the batch's events. The stream's rollup calls are left out: one per row and
batch with or without attribution (bench/rollup_cost.py measures them).

Units, by DynamoDB's published rules (sizes by `bench.event_sizes.item_size`): a consistent read
1 RCU per started 4 KB of the item (1 for an item not found, every key of a BatchGetItem counted
as a GetItem), a Query the started 4 KB of all it returned (1 at least); a write 1 WRU per
started KB of the larger of the item written and the one replaced (1 at least: a refused
conditional write and a delete cost units too); the rollup table's `changes` index (projection
ALL) moves its entry on every row write: the old entry deleted and the new one put. Dollars: on
demand, us-east-1 list prices since November 2024, $0.625 per million WRU and $0.125 per
million RRU (docs/capacity.md uses the same).

The stream as a shard delivers it, alternating between two shards: batches of clicks given a
click id (window 30 days, validation OK, billable, made as tests/test_attribution_consumer.py
makes them), then batches of conversions naming those clicks: half with an order id, a value and
a currency, DUPLICATE_SHARE sending again an order of an earlier batch, NO_CLICK_ID_SHARE
without a click id. CPU: `time.thread_time()` around each `process()` call (neither moto's
process nor the endpoint's thread is counted), click batches and conversion batches apart;
rounds alternate with and without attribution (ABAB), each with batches of its own, the figures
medians of the rounds; and a conditional PutItem timed alone, what the common path mostly adds.
Then the parked path: conversions whose clicks come after them, then the clicks, then one
`look()` of the matcher, all decided on one rollup row (whose notes of recent decisions make
each later row write dearer: `rollup_row`).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import gc
import json
import math
import random
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from bench.bars import verdict
from bench.demo_programs import DEMO_PROGRAM_ID
from bench.event_sizes import item_size
from bench.part_cli import run_part
from bench.rollup_cost import FIRST_SEQUENCE, KIB, READ_UNIT_BYTES, SHARDS, consumer_settings, moto
from consumers.attribution import records
from consumers.attribution.matcher import Matcher, build_matcher
from consumers.attribution.records import PARKED_PARTITIONS
from consumers.attribution.rules import ATTRIBUTED, DUPLICATE, NO_CLICK_ID
from consumers.attribution.table import CLAIM
from consumers.aws import LeanCalls, attribution_calls, open_dynamodb, open_lean_calls
from consumers.dead_letters import DeadLetterTable
from consumers.dynamodb_batch import BatchGetItem, BatchWriteItem, GetAnswer, GetRequest
from consumers.dynamodb_item import Condition, ItemCalls
from consumers.events_processor import EventsProcessor, build_events_processor
from consumers.metrics import ConsumerMetrics
from consumers.provision import provision
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from tests.support.proxy import EmulatorProxy
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

Item = dict[str, Any]
PROGRAM = DEMO_PROGRAM_ID
WINDOW_DAYS = 30
ORDER_SHARE = 0.5  # of the conversions naming a new click
DUPLICATE_SHARE = 0.03  # conversions sending again an order of an earlier batch
NO_CLICK_ID_SHARE = 0.03
CLICK_LEAD_MS = 60_000  # a parked conversion's click happened this long before it
WRITE_DOLLARS_PER_MILLION = 0.625  # on demand, us-east-1: per million write request units
READ_DOLLARS_PER_MILLION = 0.125
MONTH_SECONDS = 30 * 86_400
PUTS_ALONE = 400  # conditional PutItems timed alone, to tell what one costs the consumer
# The requirement for the common path, per conversion.
MAX_READS, MAX_WRITES = 1, 2

# What a record of the feed is; the conversions' decisions follow (consumers/attribution/rules.py).
CLICK = "click"
ATTRIBUTED_PATH = "attributed"  # its click recorded before, its order (or click) new
DUPLICATE_PATH = "duplicate"  # an order attributed in an earlier batch, sent again
NO_CLICK_PATH = "no_click_id"
PARKED_PATH = "parked"  # its click comes after it
STREAM_DECISIONS = {
    ATTRIBUTED_PATH: ATTRIBUTED,
    DUPLICATE_PATH: DUPLICATE,
    NO_CLICK_PATH: NO_CLICK_ID,
}

# Where a call's units go: the attribution table, the events table's item writes, the events
# table's copy check (every event's already), the rollup table, the matcher's Query.
ATTRIBUTION = "attribution"
EVENTS = "events"
COPIES = "copies"
ROLLUPS = "rollups"
QUERIES = "query"
MATCH = -1  # the tag of the matcher's calls (a stream call's tag is its batch's index)
UNRECORDED = -2  # the tag of the calls of the processor without attribution
BATCH_GET, BATCH_WRITE, GET, PUT = "BatchGetItem", "BatchWriteItem", "GetItem", "PutItem"
# The matcher's own botocore calls (its GetItem, PutItem and BatchGetItem are the lean ones).
BOTOCORE = {"query": "Query", "update_item": "UpdateItem", "delete_item": "DeleteItem"}


@dataclass(frozen=True, slots=True)
class Amounts:
    pairs: int  # rounds with and without attribution, alternating
    batch: int  # records per batch
    batches: int  # per round: this many batches of clicks, then as many of conversions
    parked: int  # conversions parked to wait for their click


FULL = Amounts(pairs=7, batch=100, batches=4, parked=100)
QUICK = Amounts(pairs=2, batch=100, batches=2, parked=40)
TINY = Amounts(pairs=1, batch=20, batches=2, parked=10)


# --- the stream ----------------------------------------------------------------------------------


class Order(NamedTuple):
    order_id: str
    value_micros: int
    currency: str


class Entry(NamedTuple):
    event: pb.TrackingEvent
    path: str
    click_id: str  # the click a conversion names, "" when none


@dataclass
class Batch:
    shard: str
    records: list[StreamRecord]
    paths: dict[str, str]  # message id -> what the record is (CLICK, or a conversion's path)
    clicks: dict[str, str]  # conversion message id -> the click id it names (none: left out)


@dataclass
class Round:
    clicks: list[Batch]
    conversions: list[Batch]


def click_event(message_id: str) -> pb.TrackingEvent:
    return pb.TrackingEvent(
        programid=PROGRAM,
        message_id=message_id,
        event_type=pb.CLICK,
        validation=pb.OK,
        is_valid=True,
        billable=True,
        attribution_window_days=WINDOW_DAYS,
    )


def conversion_event(message_id: str, click_id: str, order: Order | None) -> pb.TrackingEvent:
    event = pb.TrackingEvent(
        programid=PROGRAM,
        message_id=message_id,
        event_type=pb.CONVERSION,
        validation=pb.OK,
        is_valid=True,
        click_id=click_id,
    )
    if order is not None:
        event.order_id, event.value_micros, event.currency = order
    return event


@dataclass
class Feed:
    """Batches as two shards deliver them, one a second of simulated time, alternating."""

    rng: random.Random = field(default_factory=lambda: random.Random(20261207))
    clock_ms: int = field(default_factory=lambda: int(time.time()) // 900 * 900_000)
    sequences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHARDS, 0))
    made: int = 0  # batches so far

    def round(self, amounts: Amounts) -> Round:
        clicks = [self.clicks(self.ids(amounts.batch)) for _ in range(amounts.batches)]
        fresh = [message_id for batch in clicks for message_id in batch.paths]
        self.rng.shuffle(fresh)
        orders: list[tuple[str, Order]] = []  # (click id, order) of the round's earlier batches
        conversions = []
        for _ in range(amounts.batches):
            entries = [self._conversion(fresh, orders) for _ in range(amounts.batch)]
            conversions.append(self.batch(entries))
            # An order attributed in this batch, to send again in a later one.
            orders += [
                (e.click_id, Order(*_order_of(e.event)))
                for e in entries
                if e.path == ATTRIBUTED_PATH and e.event.order_id
            ]
        return Round(clicks, conversions)

    def parked(self, amounts: Amounts) -> Round:
        """Conversions naming clicks not recorded yet (Round.conversions, to deliver first),
        then those clicks, stamped CLICK_LEAD_MS before the conversions."""
        click_ids = self.ids(amounts.parked)
        chunks = [click_ids[n : n + amounts.batch] for n in range(0, amounts.parked, amounts.batch)]
        conversions = [
            self.batch([Entry(self._converted(c, self._order()), PARKED_PATH, c) for c in chunk])
            for chunk in chunks
        ]
        clicks = [self.clicks(chunk, -CLICK_LEAD_MS - 1000 * len(conversions)) for chunk in chunks]
        return Round(clicks, conversions)

    def ids(self, count: int) -> list[str]:
        return [self.rng.randbytes(16).hex() for _ in range(count)]

    def clicks(self, click_ids: Sequence[str], offset_ms: int = 0) -> Batch:
        return self.batch([Entry(click_event(c), CLICK, "") for c in click_ids], offset_ms)

    def batch(self, entries: Sequence[Entry], offset_ms: int = 0) -> Batch:
        """The entries as one shard's batch, spread over the current second (+ `offset_ms`)."""
        shard = SHARDS[self.made % len(SHARDS)]
        self.made += 1
        records = []
        for n, entry in enumerate(entries):
            entry.event.timestamp_ms = self.clock_ms + offset_ms + n * 1000 // len(entries)
            self.sequences[shard] += 1
            sequence = f"{FIRST_SEQUENCE + self.sequences[shard]:056d}"
            data = entry.event.SerializeToString()
            records.append(StreamRecord(sequence, entry.event.message_id, data))
        self.clock_ms += 1000
        paths = {e.event.message_id: e.path for e in entries}
        clicks = {e.event.message_id: e.click_id for e in entries if e.click_id}
        return Batch(shard, records, paths, clicks)

    def _conversion(self, fresh: list[str], orders: Sequence[tuple[str, Order]]) -> Entry:
        draw = self.rng.random()
        if draw < NO_CLICK_ID_SHARE:
            return Entry(self._converted("", self._order()), NO_CLICK_PATH, "")
        if draw < NO_CLICK_ID_SHARE + DUPLICATE_SHARE and orders:
            click_id, order = self.rng.choice(orders)
            return Entry(self._converted(click_id, order), DUPLICATE_PATH, click_id)
        click_id = fresh.pop()
        return Entry(self._converted(click_id, self._order()), ATTRIBUTED_PATH, click_id)

    def _converted(self, click_id: str, order: Order | None) -> pb.TrackingEvent:
        return conversion_event(self.ids(1)[0], click_id, order)

    def _order(self) -> Order | None:
        if self.rng.random() >= ORDER_SHARE:
            return None
        order_id = f"SO-{self.rng.randrange(10**9):09d}"
        return Order(order_id, self.rng.randrange(1, 500) * 1_000_000 - 10_000, "EUR")


def _order_of(event: pb.TrackingEvent) -> tuple[str, int, str]:
    return event.order_id, event.value_micros, event.currency


# --- the recorded calls --------------------------------------------------------------------------


class Call(NamedTuple):
    operation: str
    table: str
    request: Any  # as the call got it
    answer: Any  # as it answered; None when it raised
    tag: int  # the index of the batch being processed, MATCH or UNRECORDED


class Recorder:
    """The lean calls, passing every call on and keeping it with its answer. Appending is all it
    does per call, for the processors with and without attribution alike: the units are
    reckoned after the timed rounds."""

    def __init__(self, lean: LeanCalls) -> None:
        self._lean = lean
        self.calls: list[Call] = []
        self.tag = MATCH

    def lean(self) -> LeanCalls:
        item = ItemCalls(self.get_item, self.put_item)
        # LeanCalls names the lean classes; the processor only calls them, as these are called.
        write = cast("BatchWriteItem", self.batch_write)
        return LeanCalls(write, cast("BatchGetItem", self.batch_get), item)

    async def batch_get(self, table: str, request: GetRequest) -> GetAnswer:
        answer = await self._lean.get(table, request)
        self.calls.append(Call(BATCH_GET, table, request, answer, self.tag))
        return answer

    async def batch_write(self, table: str, requests: list[Item]) -> list[Item]:
        left = await self._lean.write(table, requests)
        self.calls.append(Call(BATCH_WRITE, table, requests, left, self.tag))
        return left

    async def get_item(self, table: str, key: Item) -> Item | None:
        item = await self._lean.item.get(table, key)
        self.calls.append(Call(GET, table, key, item, self.tag))
        return item

    async def put_item(self, table: str, item: Item, condition: Condition) -> bool:
        written = await self._lean.item.put(table, item, condition)
        self.calls.append(Call(PUT, table, item, written, self.tag))
        return written


class RecordingClient:
    """A botocore client whose Query, UpdateItem and DeleteItem (the matcher's own) are recorded;
    every other attribute is the client's."""

    def __init__(self, client: DynamoDBClient, recorder: Recorder) -> None:
        self._client = client
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        operation = BOTOCORE.get(name)
        if operation is None:
            return method

        async def call(**kwargs: Any) -> Any:
            answer = None
            try:
                answer = await method(**kwargs)
                return answer
            finally:  # a refused condition costs its units too
                call_ = Call(operation, kwargs["TableName"], kwargs, answer, self._recorder.tag)
                self._recorder.calls.append(call_)

        return call


# --- units ---------------------------------------------------------------------------------------


@dataclass
class Cost:
    reads: float = 0.0  # items read
    read_units: float = 0.0
    writes: float = 0.0  # items written (or refused)
    write_units: float = 0.0
    calls: float = 0.0  # its share of the calls

    def add(self, other: Cost, times: float = 1.0) -> None:
        self.reads += other.reads * times
        self.read_units += other.read_units * times
        self.writes += other.writes * times
        self.write_units += other.write_units * times
        self.calls += other.calls * times

    def dollars_per_million(self) -> float:
        dollars = self.read_units * READ_DOLLARS_PER_MILLION
        return round(dollars + self.write_units * WRITE_DOLLARS_PER_MILLION, 4)

    def as_json(self) -> dict[str, float]:
        return {
            "reads": round(self.reads, 4),
            "read_units": round(self.read_units, 4),
            "writes": round(self.writes, 4),
            "write_units": round(self.write_units, 4),
            "calls": round(self.calls, 4),
            "dollars_per_million": self.dollars_per_million(),
        }


def total(costs: Sequence[Cost], times: float = 1.0) -> Cost:
    summed = Cost()
    for cost in costs:
        summed.add(cost, times)
    return summed


Ledger = defaultdict[tuple[str, str], Cost]  # (message id, part) -> what its calls cost


class Tables(NamedTuple):
    attribution: str
    events: str
    rollups: str

    def part(self, table: str) -> str:
        return {self.attribution: ATTRIBUTION, self.events: EVENTS, self.rollups: ROLLUPS}[table]

    def key(self, table: str, item: Item) -> tuple[str, ...]:
        names = {
            ATTRIBUTION: ("pk", "sk"),
            EVENTS: ("program_bucket", "event_key"),
            ROLLUPS: ("program_id", "bucket"),
        }[self.part(table)]
        return (table, *(str(next(iter(item[name].values()))) for name in names))


def write_units(new: Item | None, old: Item | None) -> int:
    """A write's units: per started KB of the larger of the item written and the one it
    replaces; 1 at least (a refused condition, a delete of nothing)."""
    size = max(item_size(new) if new else 0, item_size(old) if old else 0)
    return max(1, math.ceil(size / KIB))


def read_units(item: Item | None) -> int:
    return max(1, math.ceil(item_size(item) / READ_UNIT_BYTES)) if item else 1


def request_keys(request: GetRequest) -> list[Item]:
    keys: list[Item] = json.loads(request.keys_json) if request.keys_json else request.keys
    return keys


def owner(item: Item) -> str:
    """Whose write an item is: an event's item its own, a click record its click's (the click's
    message id), a marker its winner's, a parked record its conversion's."""
    if "message_id" in item:
        return str(item["message_id"]["S"])
    partition = str(item["pk"]["S"])
    if partition.startswith("click#"):
        return partition.removeprefix("click#")
    if partition.startswith("dedupe#"):
        return str(item["winner"]["S"])
    return str(item["sk"]["S"])  # parked#n: sorted by the conversion's message id


def charge_stream(call: Call, batch: Batch, tables: Tables, ledger: Ledger) -> None:
    part = tables.part(call.table)
    if call.operation == BATCH_GET and part == ATTRIBUTION:
        charge_click_reads(request_keys(call.request), batch, ledger)
    elif call.operation == BATCH_GET and part == EVENTS:
        keys = len(request_keys(call.request))
        share = 1 / len(batch.paths)
        for message_id in batch.paths:
            ledger[message_id, COPIES].add(Cost(keys, keys, calls=1), share)
    elif call.operation == BATCH_WRITE:
        items = [request["PutRequest"]["Item"] for request in call.request]
        for item in items:
            cost = Cost(writes=1, write_units=write_units(item, None), calls=1 / len(items))
            ledger[owner(item), part].add(cost)
    elif call.operation == PUT:
        ledger[owner(call.request), part].add(Cost(0, 0, 1, write_units(call.request, None), 1))
    else:  # a call this accounting does not know: its figures would be wrong
        raise RuntimeError(f"{call.operation} on {call.table} on the stream path")


def charge_click_reads(keys: Sequence[Item], batch: Batch, ledger: Ledger) -> None:
    """Each key of the attribution table's BatchGetItem to the batch's conversions naming it."""
    naming: dict[str, list[str]] = {}
    for conversion, click_id in batch.clicks.items():
        naming.setdefault(click_id, []).append(conversion)
    for key in keys:
        readers = naming[str(key["pk"]["S"]).removeprefix("click#")]
        for reader in readers:
            ledger[reader, ATTRIBUTION].add(Cost(1, 1, calls=1 / len(keys)), 1 / len(readers))


def charge_match(
    call: Call, tables: Tables, seen: dict[tuple[str, ...], Item], ledger: Ledger
) -> None:
    """The matcher's calls, all to MATCH (one look decides many conversions at once); `seen`:
    the items last read, for the size of what a write replaces."""
    part, request, answer = tables.part(call.table), call.request, call.answer
    if call.operation == "Query":
        items = answer["Items"]
        seen.update((tables.key(call.table, i), i) for i in items)
        size = sum(item_size(i) for i in items)
        units = max(1, math.ceil(size / READ_UNIT_BYTES))
        ledger[str(MATCH), QUERIES].add(Cost(len(items), units, calls=1))
    elif call.operation == BATCH_GET:
        keys = len(request_keys(request))
        ledger[str(MATCH), part].add(Cost(keys, keys, calls=1))
    elif call.operation == GET:
        if answer is not None:
            seen[tables.key(call.table, answer)] = answer
        ledger[str(MATCH), part].add(Cost(1, read_units(answer), calls=1))
    elif call.operation == PUT:
        old = seen.get(tables.key(call.table, request))
        units = write_units(request, old)
        if part == ROLLUPS:  # the `changes` index: the old entry deleted, the new one put
            units += write_units(request, None) + (write_units(old, None) if old else 0)
        ledger[str(MATCH), part].add(Cost(0, 0, 1, units, 1))
    else:
        old = seen.get(tables.key(call.table, request["Key"]))
        new = updated(old, request) if call.operation == "UpdateItem" else None
        ledger[str(MATCH), part].add(Cost(0, 0, 1, write_units(new, old), 1))


def updated(old: Item | None, request: dict[str, Any]) -> Item:
    """The item after the matcher's UpdateItem (`SET name = :value, ...`: all it writes)."""
    values = request["ExpressionAttributeValues"]
    new = dict(old or request["Key"])
    for assignment in request["UpdateExpression"].removeprefix("SET ").split(", "):
        name, value = assignment.split(" = ")
        new[name] = values[value]
    return new


def ledger_of(calls: Sequence[Call], delivered: Sequence[Batch], tables: Tables) -> Ledger:
    """Every recorded call charged (the stream's rollup calls left out: see the docstring)."""
    ledger: Ledger = defaultdict(Cost)
    seen: dict[tuple[str, ...], Item] = {}
    for call in calls:
        if call.tag == MATCH:
            charge_match(call, tables, seen, ledger)
        elif call.tag >= 0 and tables.part(call.table) != ROLLUPS:
            charge_stream(call, delivered[call.tag], tables, ledger)
    return ledger


def per_record(ledger: Ledger, message_ids: Sequence[str]) -> dict[str, Any]:
    """The mean cost per record of `message_ids` by part; the most reads and writes any had."""
    if not message_ids:
        return {"count": 0}
    parts = {
        part: total([ledger.get((m, part), Cost()) for m in message_ids], 1 / len(message_ids))
        for part in (ATTRIBUTION, EVENTS, COPIES)
    }
    reads = [ledger.get((m, ATTRIBUTION), Cost()).reads for m in message_ids]
    writes = [
        ledger.get((m, ATTRIBUTION), Cost()).writes + ledger.get((m, EVENTS), Cost()).writes
        for m in message_ids
    ]
    item_write = total([parts[ATTRIBUTION], parts[EVENTS]])
    return {
        "count": len(message_ids),
        # The requirement's: the attribution table's reads, its writes and the item's write.
        "reads": {"mean": round(statistics.mean(reads), 4), "max": round(max(reads), 4)},
        "writes": {"mean": round(statistics.mean(writes), 4), "max": round(max(writes), 4)},
        "attribution_table": parts[ATTRIBUTION].as_json(),
        "events_table_item": parts[EVENTS].as_json(),
        "copy_check": parts[COPIES].as_json(),  # every event's already, attribution or not
        "dollars_per_million": {
            "attribution_table": parts[ATTRIBUTION].dollars_per_million(),
            "with_item_write": item_write.dollars_per_million(),
            "with_copy_check": total(list(parts.values())).dollars_per_million(),
        },
    }


# --- the measurement -----------------------------------------------------------------------------


@dataclass
class Run:
    """The processor as built and the same without attribution, the recorder both call through,
    and the batches the one with attribution was given (its stream calls' tags index them)."""

    with_attribution: EventsProcessor
    without: EventsProcessor
    matcher: Matcher
    recorder: Recorder
    metrics: ConsumerMetrics  # the processor's and the matcher's
    delivered: list[Batch] = field(default_factory=list)

    async def deliver(self, processor: EventsProcessor, batches: Sequence[Batch]) -> float:
        """CPU seconds of this thread in `process()` over the batches, one after the other."""
        recorded = processor is self.with_attribution
        spent = 0.0
        for batch in batches:
            self.recorder.tag = len(self.delivered) if recorded else UNRECORDED
            if recorded:
                self.delivered.append(batch)
            started = time.thread_time()
            await processor.process(batch.shard, batch.records)
            spent += time.thread_time() - started
        return spent

    async def look(self) -> tuple[int, float]:
        """One look of the matcher: what it decided, and its CPU seconds."""
        self.recorder.tag = MATCH
        started = time.thread_time()
        decided = await self.matcher.look()
        return decided, time.thread_time() - started

    def forget(self) -> None:
        self.recorder.calls.clear()
        self.delivered.clear()


def build_run(settings: ConsumerSettings, dynamodb: DynamoDBClient, lean: LeanCalls) -> Run:
    metrics = ConsumerMetrics()
    recorder = Recorder(lean)
    recorded = recorder.lean()
    letters = DeadLetterTable(dynamodb, settings.dead_letter_table, metrics)
    built = build_events_processor(settings, dynamodb, letters, metrics, lean=recorded)
    # The same processor, clients, writers and rollup state, but no attribution (what
    # EventStores.attribution None builds): the difference between the two is attribution's.
    without = copy.copy(built)
    without._attribution = None
    client = cast("DynamoDBClient", RecordingClient(dynamodb, recorder))
    # As workers build it: the lean calls for its GetItem, PutItem and BatchGetItem.
    matcher = build_matcher(settings, client, metrics, attribution_calls(recorded))
    return Run(built, without, matcher, recorder, metrics)


@dataclass
class Timings:
    """CPU seconds per round in click batches and in conversion batches, with and without."""

    records: int  # of each kind per round
    with_attribution: list[tuple[float, float]] = field(default_factory=list)
    without: list[tuple[float, float]] = field(default_factory=list)


async def warm(run: Run, feed: Feed, amounts: Amounts) -> None:
    """A round of each, not counted: connections opened, the rollup row made."""
    for processor in (run.with_attribution, run.without):
        batches = feed.round(amounts)
        await run.deliver(processor, batches.clicks + batches.conversions)
    run.forget()


async def timed_rounds(run: Run, feed: Feed, amounts: Amounts) -> Timings:
    """`pairs` rounds of each processor, which goes first alternating, each with new batches."""
    timings = Timings(amounts.batch * amounts.batches)
    for number in range(amounts.pairs):
        order = [run.with_attribution, run.without]
        for processor in order if number % 2 == 0 else order[::-1]:
            fresh = feed.round(amounts)
            gc.collect()  # no collection of the previous round's garbage inside this one
            gc.freeze()  # as `consumers events` does once started (consumers/worker.py)
            clicks = await run.deliver(processor, fresh.clicks)
            conversions = await run.deliver(processor, fresh.conversions)
            if processor is run.with_attribution:
                timings.with_attribution.append((clicks, conversions))
            else:
                timings.without.append((clicks, conversions))
    return timings


def cpu_summary(timings: Timings) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for index, name in ((0, "per_click"), (1, "per_conversion")):
        with_us = [1e6 * r[index] / timings.records for r in timings.with_attribution]
        without_us = [1e6 * r[index] / timings.records for r in timings.without]
        added = [a - b for a, b in zip(with_us, without_us, strict=True)]
        summary[name] = {
            "with_attribution": round(statistics.median(with_us), 2),
            "without_attribution": round(statistics.median(without_us), 2),
            "added": round(statistics.median(added), 2),
            "rounds_with": [round(x, 2) for x in with_us],
            "rounds_without": [round(x, 2) for x in without_us],
        }
    return summary


async def parked_path(run: Run, feed: Feed, amounts: Amounts) -> dict[str, float]:
    """Conversions parked, their clicks after them, then one look of the matcher."""
    phase = feed.parked(amounts)
    stream_seconds = await run.deliver(run.with_attribution, phase.conversions)
    await run.deliver(run.with_attribution, phase.clicks)
    decided, seconds = await run.look()
    if decided != amounts.parked:
        raise RuntimeError(f"the matcher decided {decided} of {amounts.parked} parked")
    return {
        # The processor with attribution only: the conversions it parks.
        "stream_per_conversion": round(1e6 * stream_seconds / amounts.parked, 2),
        "matcher_per_conversion": round(1e6 * seconds / decided, 2),
    }


async def put_alone(lean: LeanCalls, table: str, concurrent: int) -> float:
    """CPU us of this thread per conditional PutItem of a new marker, `concurrent` at a time as
    a batch's claims go, nothing else running: most of what the common path adds."""
    winners = [random.randbytes(16).hex() for _ in range(PUTS_ALONE)]
    markers = [records.marker(f"order#{PROGRAM}#{w}", w, int(time.time() * 1000)) for w in winners]
    gc.collect()
    started = time.thread_time()
    for n in range(0, len(markers), concurrent):
        chunk = markers[n : n + concurrent]
        await asyncio.gather(
            *(lean.item.put(table, m, Condition(CLAIM, {":m": m["winner"]})) for m in chunk)
        )
    return round(1e6 * (time.thread_time() - started) / len(markers), 2)


def decided_counts(metrics: ConsumerMetrics) -> dict[str, float]:
    def sample(name: str, labels: dict[str, str] | None = None) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    decided = "consumer_conversions_decided_total"
    counts = {
        path: sample(decided, {"attribution": value, "by": "stream"})
        for path, value in STREAM_DECISIONS.items()
    }
    counts[PARKED_PATH] = sample("consumer_conversions_parked_total")
    counts["matched"] = sample(decided, {"attribution": ATTRIBUTED, "by": "match"})
    return counts


def check_decisions(counted: dict[str, float], paths: dict[str, list[str]]) -> None:
    """Each conversion decided as its path says, else its units are charged to the wrong path."""
    expected = {path: len(paths.get(path, [])) for path in (*STREAM_DECISIONS, PARKED_PATH)}
    expected["matched"] = expected[PARKED_PATH]
    if counted != expected:
        raise RuntimeError(f"decided {counted}, the feed's paths say {expected}")


def paths_of(batches: Sequence[Batch]) -> dict[str, list[str]]:
    paths: dict[str, list[str]] = defaultdict(list)
    for batch in batches:
        for message_id, path in batch.paths.items():
            paths[path].append(message_id)
    return dict(paths)


async def measure_all(moto_url: str, url: str, amounts: Amounts) -> dict[str, Any]:
    """Tables made in moto, then every call through `url` (kept_alive)."""
    await provision(consumer_settings(moto_url, moto_url))
    settings = consumer_settings(url, moto_url)
    tables = Tables(settings.attribution.table, settings.events_table, settings.rollup_table)
    async with AsyncExitStack() as stack:
        dynamodb = await open_dynamodb(settings, stack)
        lean = await open_lean_calls(dynamodb, stack)
        run = build_run(settings, dynamodb, lean)
        feed = Feed()
        await warm(run, feed, amounts)
        before = decided_counts(run.metrics)
        timings = await timed_rounds(run, feed, amounts)
        parked_cpu = await parked_path(run, feed, amounts)
        alone = await put_alone(lean, tables.attribution, amounts.batch)
        after = decided_counts(run.metrics)
    paths = paths_of(run.delivered)
    check_decisions({name: after[name] - before[name] for name in before}, paths)
    ledger = ledger_of(run.recorder.calls, run.delivered, tables)
    return {
        "amounts": dataclasses.asdict(amounts),
        "conversions": {
            path: len(paths.get(path, [])) for path in (*STREAM_DECISIONS, PARKED_PATH)
        },
        **summarize(ledger, paths),
        "parked": parked_summary(ledger, paths.get(PARKED_PATH, [])),
        "looks": looks(run.recorder.calls, settings.attribution.match_poll_seconds),
        "rollup_row": row_growth(run.recorder.calls, tables),
        "conversion_item": decision_growth(run.recorder.calls, tables),
        "cpu_us": {
            **cpu_summary(timings),
            "parked": parked_cpu,
            "conditional_put_alone": alone,
        },
    }


def summarize(ledger: Ledger, paths: dict[str, list[str]]) -> dict[str, Any]:
    """Per conversion of each stream path, of the common path (its click found: attributed or
    a duplicate), of the whole mix; per click; and the issue's requirement."""
    common = paths.get(ATTRIBUTED_PATH, []) + paths.get(DUPLICATE_PATH, [])
    per_conversion = {path: per_record(ledger, paths.get(path, [])) for path in STREAM_DECISIONS}
    per_conversion["common_path"] = per_record(ledger, common)
    per_conversion["mix"] = per_record(ledger, common + paths.get(NO_CLICK_PATH, []))
    reads, writes = per_conversion["common_path"]["reads"], per_conversion["common_path"]["writes"]
    return {
        "per_conversion": per_conversion,
        "per_click": per_record(ledger, paths.get(CLICK, [])),
        "requirement": {
            "text": "at most one DynamoDB read and two writes per conversion on the common path",
            "reads_max": reads["max"],
            "writes_max": writes["max"],
            # The events table's BatchGetItem, one consistent read per event with or without
            # attribution: not counted in `reads`.
            "copy_check_reads": per_conversion["common_path"]["copy_check"]["reads"],
            "holds": reads["max"] <= MAX_READS and writes["max"] <= MAX_WRITES,
        },
    }


def parked_summary(ledger: Ledger, parked: Sequence[str]) -> dict[str, Any]:
    """A parked conversion on the stream (its click read and not found, its parked record, its
    PENDING item) and its share of the matcher's look that decided it."""
    if not parked:
        return {"count": 0}
    share = 1 / len(parked)
    matcher = {
        part: total([ledger.get((str(MATCH), part), Cost())], share)
        for part in (QUERIES, ATTRIBUTION, EVENTS, ROLLUPS)
    }
    matched = total(list(matcher.values()))
    stream = per_record(ledger, parked)
    dollars = stream["dollars_per_million"]
    return {
        "stream": stream,
        "matcher": {part: cost.as_json() for part, cost in matcher.items()},
        "matcher_total": matched.as_json(),
        "dollars_per_million": round(dollars["with_item_write"] + matched.dollars_per_million(), 4),
        "dollars_per_million_with_copy_check": round(
            dollars["with_copy_check"] + matched.dollars_per_million(), 4
        ),
    }


def looks(calls: Sequence[Call], poll_seconds: float) -> dict[str, Any]:
    """What every worker's looks cost whatever is parked: a Query per partition, 1 RCU at
    least; and what a waiting conversion adds to each look (its record read again)."""
    records = [i for c in calls if c.operation == "Query" for i in c.answer["Items"]]
    record_bytes = statistics.mean(item_size(i) for i in records) if records else 0.0
    per_month = PARKED_PARTITIONS * MONTH_SECONDS / poll_seconds
    return {
        "poll_seconds": poll_seconds,
        "queries_per_look": PARKED_PARTITIONS,
        "read_units_per_empty_look": PARKED_PARTITIONS,
        "dollars_per_worker_month_empty": round(per_month * READ_DOLLARS_PER_MILLION / 1e6, 2),
        "parked_record_bytes": round(record_bytes),
        "read_units_per_waiting_conversion_per_look": round(record_bytes / READ_UNIT_BYTES, 4),
    }


def row_growth(calls: Sequence[Call], tables: Tables) -> dict[str, Any]:
    """The rollup rows the matcher wrote: each decision is noted in the row (`late`), kept for
    the matcher's NOTE_SECONDS, so the row grows with the decisions of the last minutes."""
    rows = [
        c.request
        for c in calls
        if c.tag == MATCH and c.operation == PUT and tables.part(c.table) == ROLLUPS
    ]
    if not rows:
        return {"writes": 0}
    last = rows[-1]
    notes = len(last.get("late", {}).get("M", {}))
    without_notes = {k: v for k, v in last.items() if k != "late"}
    note_bytes = (item_size(last) - item_size(without_notes)) / notes if notes else 0.0
    return {
        "writes": len(rows),
        "bytes_first": item_size(rows[0]),
        "bytes_last": item_size(last),
        "notes_last": notes,
        "bytes_per_note": round(note_bytes, 1),
        # A row write's units, table and `changes` index (old entry out, new in), at the size
        # of the first and of the last (the item it replaces about as large).
        "write_units_first": 3 * write_units(rows[0], None),
        "write_units_last": 3 * write_units(last, None),
    }


def decision_growth(calls: Sequence[Call], tables: Tables) -> dict[str, Any]:
    """What the decision's attributes add to the conversion items the stream writes."""
    fields = ("attribution", "attribution_by", "click_timestamp_ms", "click_billable")
    items = [
        request["PutRequest"]["Item"]
        for c in calls
        if c.tag >= 0 and c.operation == BATCH_WRITE and tables.part(c.table) == EVENTS
        for request in c.request
        if "attribution" in request["PutRequest"]["Item"]
    ]
    if not items:
        return {"items": 0}
    pairs = [(i, {k: v for k, v in i.items() if k not in fields}) for i in items]
    return {
        "items": len(items),
        "bytes_median": round(statistics.median(map(item_size, items))),
        "decision_bytes_median": round(
            statistics.median(item_size(i) - item_size(b) for i, b in pairs)
        ),
        "items_a_write_unit_more": sum(
            write_units(i, None) > write_units(b, None) for i, b in pairs
        ),
    }


@contextmanager
def kept_alive(upstream: str) -> Iterator[str]:
    """A pass-through endpoint before moto on a thread of its own (whose CPU no figure counts):
    moto's server closes each connection after one answer, and connecting anew for every call
    would be counted as the consumer's CPU; DynamoDB keeps them open."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kept-alive", daemon=True)
    thread.start()
    endpoint = EmulatorProxy(upstream)
    try:
        asyncio.run_coroutine_threadsafe(endpoint.start(), loop).result(timeout=30)
        yield endpoint.url
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def measure(amounts: Amounts) -> dict[str, Any]:
    with moto() as moto_url, kept_alive(moto_url) as url:
        return asyncio.run(measure_all(moto_url, url, amounts))


def summary(part: dict[str, Any]) -> str:
    common, mix = part["per_conversion"]["common_path"], part["per_conversion"]["mix"]
    parked, click, cpu = part["parked"], part["per_click"], part["cpu_us"]
    requirement = part["requirement"]
    lines = [
        f"common path ({common['count']} conversions): reads {common['reads']}, writes "
        f"{common['writes']} per conversion; attribution table "
        f"{common['attribution_table']['read_units']} RRU + "
        f"{common['attribution_table']['write_units']} WRU, "
        f"{common['attribution_table']['calls']} calls; $ per million conversions "
        f"{common['dollars_per_million']}",
        f"requirement <= {MAX_READS} read, <= {MAX_WRITES} writes: "
        f"{verdict(requirement['holds'])} (copy check "
        f"{requirement['copy_check_reads']} read per event apart)",
        f"mix: $ per million conversions {mix['dollars_per_million']}",
        f"parked: stream reads {parked['stream']['reads']}, writes {parked['stream']['writes']}; "
        f"matcher {parked['matcher_total']}; $ per million {parked['dollars_per_million']}",
        f"click: {click['attribution_table']}; $ per million clicks "
        f"{click['dollars_per_million']['attribution_table']}",
        f"CPU us per conversion: {cpu['per_conversion']['with_attribution']} with, "
        f"{cpu['per_conversion']['without_attribution']} without, added "
        f"{cpu['per_conversion']['added']}; per click added {cpu['per_click']['added']}; "
        f"parked {cpu['parked']}",
    ]
    return "\n".join(lines)


def main() -> None:
    run_part(__doc__, "fewer and smaller rounds", measure, summary, (FULL, QUICK))


if __name__ == "__main__":
    main()
