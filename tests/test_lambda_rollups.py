"""The Lambda handler keeps the rollups exact under its retry and bisect, against a real moto.

The real `events_handler` (in a thread of its own, as in Lambda) is handed the batches Lambda's
event source mapping would hand it: the whole batch, the batch again from the sequence number the
handler reported in `batchItemFailures`, the halves and halves of halves of a bisected batch, a
half already stored handed again, and copies of events on new records (a producer's retry), in the
same invocation and in later ones, on the same shard and on another. DynamoDB fails part-way (a
proxy in front of moto): rollup GetItems answered 500, rollup PutItems refused or applied with
their answer lost, event writes left unprocessed. Each injected failure is checked to have made
the handler report the chunk it broke, so no test can pass without its failure.

What must hold at the end: the rollup counters, per item and summed per name, equal the counters
computed here, independently, from the distinct events (docs/reporting.md); the events table
holds each distinct message id once, stored from the first record that carried it; nothing was
dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from consumers.lambda_handlers import ENVIRONMENT, BatchResponse, events_handler
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    message_ids,
    provisioned,
    scan_table,
    stored_message_ids,
)
from tests.support.dynamodb_proxy import CONTENT_TYPE, FaultyDynamoDBProxy, WriteRequest, never
from tests.support.lambda_events import SHARD, kinesis_event, sequence
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.timeout(120)

OTHER_SHARD = "shardId-000000000001"
BUCKET_MS = 900_000
NOW_MS = 1_780_000_000_000 // BUCKET_MS * BUCKET_MS  # a bucket's start
PROGRAMS = ("shoes", "hats", "socks")
UNKNOWN = "*unknown"
IVT_REASONS = (
    pb.IVT_KNOWN_CRAWLER,
    pb.IVT_PREFETCH,
    pb.IVT_DUPLICATE_CLICK,
    pb.IVT_BAD_SIGNATURE,
    pb.IVT_EXPIRED_LINK,
)
TYPE_NAMES = {pb.IMPRESSION: "impressions", pb.CLICK: "clicks", pb.EVENT: "events"}
INTERNAL_ERROR = {
    "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
    "message": "Internal server error (injected by the test proxy)",
}
Key = dict[str, Any]
ItemCounts = Counter[tuple[str, str, str]]  # (program_id, bucket, name) -> count
Records = list[dict[str, Any]]


# The proxy: FaultyDynamoDBProxy (event writes withheld, PutItems refused), plus rollup GetItems
# that fail and rollup PutItems whose answer is lost after DynamoDB applied them.


def no_key(_key: Key) -> bool:
    return False


class RollupFaultsProxy(FaultyDynamoDBProxy):
    def __init__(self, upstream: str, rollup_table: str) -> None:
        super().__init__(upstream)
        self.rollup_table = rollup_table
        self.fail_get: Callable[[Key], bool] = no_key  # answered 500, never reaching moto
        self.lose_answer: Callable[[Key], bool] = no_key  # applied by moto, answered 500
        self.failed_gets = 0
        self.lost_answers = 0

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        operation = target.rsplit(".", 1)[-1]
        if operation in ("GetItem", "PutItem"):
            call = json.loads(body)
            if call.get("TableName") == self.rollup_table:
                if operation == "GetItem" and self.fail_get(call["Key"]):
                    self.failed_gets += 1
                    return internal_error()
                if operation == "PutItem" and self.lose_answer(call["Item"]):
                    answer = await super().handle(request, target, body)
                    if answer.status != 200:
                        return answer  # refused, or the condition failed: that answer stands
                    self.lost_answers += 1
                    return internal_error()
        return await super().handle(request, target, body)


def internal_error() -> web.Response:
    return web.Response(status=500, body=json.dumps(INTERNAL_ERROR), content_type=CONTENT_TYPE)


def rollup_of(program: str) -> Callable[[Key], bool]:
    """A rollup item's key (or the item) of that program, any bucket."""
    return lambda key: key["program_id"]["S"] == program


def rollup_put_of(program: str) -> Callable[[WriteRequest], bool]:
    """For `refuse`: a rollup item of that program (event items, also written through the proxy,
    carry a `program_id` too but no `counts`)."""

    def picks(request: WriteRequest) -> bool:
        item = request["PutRequest"]["Item"]
        return "counts" in item and item["program_id"]["S"] == program

    return picks


def events_of(program: str) -> Callable[[WriteRequest], bool]:
    """For `should_withhold`: the event items of that program."""
    return lambda request: request["PutRequest"]["Item"]["program_id"]["S"] == program


def once_per_item() -> Callable[[Key], bool]:
    """Every rollup item's first PutItem: its answer is lost."""
    seen: set[tuple[str, str]] = set()

    def picks(item: Key) -> bool:
        key = (item["program_id"]["S"], item["bucket"]["S"])
        first = key not in seen
        seen.add(key)
        return first

    return picks


# Fixtures, as in tests/test_lambda_handlers.py, with the DynamoDB endpoint behind the proxy.


@pytest.fixture(autouse=True)
async def _fresh_environment() -> AsyncIterator[None]:
    """Each test starts like a new execution environment; its clients are closed after it."""
    yield
    await asyncio.to_thread(ENVIRONMENT.close)


@pytest.fixture
async def settings(
    monkeypatch: pytest.MonkeyPatch, kinesalite_url: str, moto_url: str, redis_url: str
) -> ConsumerSettings:
    """Streams and tables of the test's own (rollup and report-key tables included); the
    handler's environment points at them. These settings point at moto itself."""
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    ready = await provisioned(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return ready


@pytest.fixture
async def proxy(
    settings: ConsumerSettings, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RollupFaultsProxy]:
    """The handler's DynamoDB, with faults on demand; the test's own reads go to moto."""
    faulty = await RollupFaultsProxy(moto_url, settings.rollup_table).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", faulty.url)
    yield faulty
    await faulty.close()


async def invoke(event: dict[str, Any]) -> BatchResponse:
    """The handler runs its own event loop, so it runs in a thread of its own, as in Lambda."""
    return await asyncio.to_thread(events_handler, event, None)


def retry_from(n: int) -> BatchResponse:
    return {"batchItemFailures": [{"itemIdentifier": sequence(n)}]}


STORED: BatchResponse = {"batchItemFailures": []}


# The events, and what the rollups must hold, computed here without consumers.rollups.


def mixed_events(count: int, seed: int, marked: dict[str, range]) -> list[bytes]:
    """Impressions, clicks and events of a few programs and of unknown ids, billable or not,
    with every IVT reason and several validations, over a few buckets (one of them days late).
    The events at the indexes of `marked[program]` are that program's, and only they are: a
    fault aimed at that program hits only the chunks that hold them."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        program = next((p for p, indexes in marked.items() if n in indexes), None)
        if program is None:
            validation = rng.choice(
                [pb.OK] * 6
                + [pb.INACTIVE, pb.OUTSIDE_WINDOW, pb.UNVERIFIED]
                + [pb.UNKNOWN_PROGRAM] * 2
            )
            unknown = validation == pb.UNKNOWN_PROGRAM
            program = f"ghost-{rng.randrange(40)}" if unknown else rng.choice(PROGRAMS)
        else:
            validation = rng.choice([pb.OK, pb.OK, pb.INACTIVE])
        ivt = rng.choice([pb.IVT_NONE] * 5 + list(IVT_REASONS))
        kind = rng.choice([pb.IMPRESSION, pb.IMPRESSION, pb.CLICK, pb.EVENT])
        late = rng.choice([0, 0, 0, 1, 2, 3 * 96])  # buckets back; 3 days back for some
        events.append(
            pb.TrackingEvent(
                programid=program,
                message_id=f"m{seed}-{n}-{rng.getrandbits(64):016x}",
                timestamp_ms=NOW_MS - late * BUCKET_MS + rng.randrange(BUCKET_MS),
                event_type=kind,
                ivt=ivt,
                validation=validation,
                is_valid=validation == pb.OK,
                billable=validation == pb.OK and ivt == pb.IVT_NONE,
                visitor_id=f"{rng.getrandbits(128):032x}",
            ).SerializeToString()
        )
    return events


def quarter_hour(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    start = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    return start.strftime("%Y-%m-%dT%H:%MZ")


def expected_counts(payloads: Iterable[bytes]) -> ItemCounts:
    """Per rollup item and name, what the distinct events (by message id) add up to."""
    counts: ItemCounts = Counter()
    seen: set[str] = set()
    for data in payloads:
        event = pb.TrackingEvent.FromString(data)
        if event.message_id in seen:
            continue
        seen.add(event.message_id)
        program = UNKNOWN if event.validation == pb.UNKNOWN_PROGRAM else event.programid
        names = [TYPE_NAMES[event.event_type], f"validation.{pb.Validation.Name(event.validation)}"]
        if event.billable and event.event_type != pb.EVENT:
            names.append(f"billable_{TYPE_NAMES[event.event_type]}")
        if event.ivt != pb.IVT_NONE:
            names.append(f"ivt.{pb.InvalidTraffic.Name(event.ivt)}")
        for name in names:
            counts[program, quarter_hour(event.timestamp_ms), name] += 1
    return counts


def per_name(counts: ItemCounts) -> Counter[str]:
    total: Counter[str] = Counter()
    for (_, _, name), count in counts.items():
        total[name] += count
    return total


async def rollup_counts(settings: ConsumerSettings) -> ItemCounts:
    assert settings.aws.dynamodb_endpoint is not None
    counts: ItemCounts = Counter()
    for item in await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table):
        program, bucket = item["program_id"]["S"], item["bucket"]["S"]
        for name, value in item["counts"]["M"].items():
            counts[program, bucket, name] += int(value["N"])
    return counts


async def assert_exact(settings: ConsumerSettings, payloads: list[bytes]) -> None:
    """The rollups count every distinct event once; each is stored once; nothing dead-lettered."""
    expected = expected_counts(payloads)
    counted = await rollup_counts(settings)
    assert per_name(counted) == per_name(expected)
    assert counted == expected
    assert settings.aws.dynamodb_endpoint is not None
    stored = await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table)
    assert stored == dict.fromkeys(message_ids(payloads), 1)
    assert await scan_table(settings.aws.dynamodb_endpoint, settings.dead_letter_table) == []


async def assert_between(
    settings: ConsumerSettings, done: list[bytes], seen: list[bytes], partly: bool | None = None
) -> None:
    """After a failed invocation: everything before the reported record is counted, nothing
    beyond the chunk that failed is, and nothing is counted twice. `partly`: some of the chunk
    that failed is counted (True), none of it (False: its events were never all stored)."""
    counted = await rollup_counts(settings)
    assert expected_counts(done) <= counted <= expected_counts(seen)
    if partly is not None:
        assert (counted != expected_counts(done)) is partly


# Lambda's Kinesis batches: record n of a batch is the one with sequence(n).


def batch(payloads: list[bytes], settings: ConsumerSettings, first: int = 1) -> Records:
    event = kinesis_event(payloads, settings, settings.event_stream, first)
    records: Records = event["Records"]
    return records


def span(records: Records, first: int, last: int) -> dict[str, Any]:
    """The records with sequence(first) to sequence(last), as one invocation's event."""
    numbers = {sequence(n) for n in range(first, last + 1)}
    chosen = [r for r in records if r["kinesis"]["sequenceNumber"] in numbers]
    assert len(chosen) == last - first + 1
    return {"Records": chosen}


def on_shard(records: Records, shard: str) -> Records:
    return [{**r, "eventID": f"{shard}:{r['kinesis']['sequenceNumber']}"} for r in records]


async def test_retries_from_the_reported_record_and_whole_redeliveries_count_once(
    settings: ConsumerSettings, proxy: RollupFaultsProxy
) -> None:
    # 350 records: chunks 1-100, 101-200, 201-300, 301-350; a fault aimed at each mark program
    # breaks the chunk holding its events, after what came before in that chunk was stored.
    marked = {
        "mark-get": range(140, 160),
        "mark-write": range(230, 250),
        "mark-put": range(320, 335),
    }
    payloads = mixed_events(350, seed=1, marked=marked)
    records = batch(payloads, settings)

    # Rollup GetItems of one item of chunk 2 fail (HTTP 500): its events are stored, some of
    # its items counted, the handler reports its first record.
    proxy.fail_get = rollup_of("mark-get")
    assert await invoke(span(records, 1, 350)) == retry_from(101)
    assert proxy.failed_gets > 0
    await assert_between(settings, payloads[:100], payloads[:200], partly=True)

    # The function "errored" (as far as Lambda knows): the whole batch comes again. Chunk 3's
    # event writes are left unprocessed now, and every rollup write's first answer is lost.
    proxy.fail_get = no_key
    proxy.should_withhold = events_of("mark-write")
    proxy.lose_answer = once_per_item()
    assert await invoke(span(records, 1, 350)) == retry_from(201)
    assert proxy.withheld_requests > 0
    assert proxy.lost_answers > 0
    await assert_between(settings, payloads[:200], payloads[:300], partly=False)

    # From the reported record; now one rollup PutItem of the last chunk is refused.
    proxy.should_withhold = never
    proxy.refuse = rollup_put_of("mark-put")
    assert await invoke(span(records, 201, 350)) == retry_from(301)
    assert proxy.refused_calls > 0
    await assert_between(settings, payloads[:300], payloads)

    # From the reported record again, DynamoDB healthy: all stored.
    proxy.refuse = never
    assert await invoke(span(records, 301, 350)) == STORED
    await assert_exact(settings, payloads)

    # And the whole batch once more, as after a function error: nothing changes.
    assert await invoke(span(records, 1, 350)) == STORED
    await assert_exact(settings, payloads)


async def test_a_bisected_batch_counts_once(
    settings: ConsumerSettings, proxy: RollupFaultsProxy
) -> None:
    # 300 records; the fault sits in 256-270 (the second half, in the first half of its half).
    payloads = mixed_events(300, seed=2, marked={"mark": range(255, 270)})
    records = batch(payloads, settings)

    assert await invoke(span(records, 1, 150)) == STORED  # the first half

    # The second half: chunk 151-250 is stored, chunk 251-300 fails on a rollup GetItem.
    proxy.fail_get = rollup_of("mark")
    assert await invoke(span(records, 151, 300)) == retry_from(251)
    assert proxy.failed_gets > 0
    await assert_between(settings, payloads[:250], payloads, partly=True)

    # Bisected from the reported record: 251-275 and 276-300. The first quarter fails again,
    # now on its event writes.
    proxy.fail_get = no_key
    proxy.should_withhold = events_of("mark")
    assert await invoke(span(records, 251, 275)) == retry_from(251)
    assert proxy.withheld_requests > 0
    await assert_between(settings, payloads[:250], payloads)

    # Halves of that quarter, DynamoDB healthy again; then the last quarter.
    proxy.should_withhold = never
    assert await invoke(span(records, 251, 263)) == STORED
    assert await invoke(span(records, 264, 275)) == STORED
    assert await invoke(span(records, 276, 300)) == STORED
    await assert_exact(settings, payloads)

    # Halves already stored, handed again, overlapping what came after them; the whole batch.
    assert await invoke(span(records, 1, 150)) == STORED
    assert await invoke(span(records, 101, 200)) == STORED
    assert await invoke(span(records, 226, 300)) == STORED
    assert await invoke(span(records, 1, 300)) == STORED
    await assert_exact(settings, payloads)


async def test_copies_of_events_on_new_records_count_once(
    settings: ConsumerSettings, proxy: RollupFaultsProxy
) -> None:
    payloads = mixed_events(260, seed=3, marked={"mark": range(230, 245)})
    # One invocation, chunks 1-100, 101-200, 201-250: events 0-149, copies of 0-29 (the chunk
    # after their originals'), events 150-199, copies of 180-189 (in their originals' chunk) and
    # of 90-99 (two chunks after theirs).
    first = payloads[:150] + payloads[:30] + payloads[150:200] + payloads[180:190]
    first += payloads[90:100]
    assert await invoke({"Records": batch(first, settings)}) == STORED
    await assert_exact(settings, payloads[:200])

    # A later invocation, from sequence(1001): copies of 100-199, new events 200-259 (a rollup
    # GetItem of mark fails), copies of 0-39.
    later = payloads[100:260] + payloads[:40]
    records = batch(later, settings, first=1001)
    proxy.fail_get = rollup_of("mark")
    assert await invoke({"Records": records}) == retry_from(1101)
    assert proxy.failed_gets > 0
    await assert_between(settings, payloads[:200], payloads, partly=True)
    proxy.fail_get = no_key
    assert await invoke(span(records, 1101, 1200)) == STORED
    await assert_exact(settings, payloads)

    # Copies on another shard, under sequence numbers the first shard used too; and every
    # batch once more.
    elsewhere = on_shard(batch(payloads[:50] + payloads[200:260], settings), OTHER_SHARD)
    assert await invoke({"Records": elsewhere}) == STORED
    assert await invoke({"Records": batch(first, settings)}) == STORED
    assert await invoke({"Records": records}) == STORED
    await assert_exact(settings, payloads)

    # Each event item names the record that carried the event first, on the first shard.
    firsts: dict[str, str] = {}
    for n, data in enumerate(first):
        firsts.setdefault(pb.TrackingEvent.FromString(data).message_id, sequence(1 + n))
    for n, data in enumerate(later):
        firsts.setdefault(pb.TrackingEvent.FromString(data).message_id, sequence(1001 + n))
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)
    origins = {i["message_id"]["S"]: i["stream_record"]["S"] for i in items}
    assert origins == {m: f"{SHARD}:{seq}:0" for m, seq in firsts.items()}
