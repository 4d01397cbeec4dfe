"""Event records -> DynamoDB items, with undecodable records sent to the dead-letter table.

Events of suppressed users are not stored: a batch's distinct user keys are checked before the
write (consumers/suppression.py). When the write took longer than the answer may be trusted (a
throttled or retried write), the keys are checked again afterwards and whatever was stored for a
user suppressed meanwhile is deleted, so that no write lands later than erase's wait allows.

A dead letter keeps raw bytes only of a record that is no TrackingEvent at all; an event that
decoded keeps its place in the stream and the event without its personal fields.

Events without an item (EVENTS_TABLE_TYPES): an event whose type the setting leaves out is not
written to EVENTS_TABLE (no write, no dead letter) and not looked up by the copy check (its key
is never written, so the read could find nothing); it still goes through suppression,
attribution (a click still gets its click record) and the rollups. The hot loop pays one
frozenset test per event, and such an event gets only its key, not a whole item. How its count
stays exact, case by case (docs/reporting.md, "Exactly once"):
- The same record again (a kill before the checkpoint, a lease hand-over, a Lambda retry or
  bisect): the rollup rows' positions per shard (consumers/rollups/state.py `unseen`) count only
  records past the last one counted, and they never look at items. Counting happens after the
  write as before, so a kill anywhere leaves the record to be counted once when it comes back.
- A copy on another record within one batch: the first record of a key stands for it, here as
  in StoredCopies.firsts; the others are dropped before anything is counted.
- A copy on another record in a later batch (the tracker's retry after an unclear PutRecords
  answer, its on-disk log replayed after a crash): for an item that is StoredCopies' lookup of
  the item's `stream_record`. Without an item nothing remembers the first record, so such a copy
  IS counted again. Closing that takes a durable write per event (a marker item: the same write
  units as the item itself), which is the cost this setting removes; positions cannot see it,
  and a process-local memory would not survive a restart. So the rollups of a type left out are
  exact through redeliveries and in-batch copies, and over-count by the copies that reach the
  stream on other records (rare: a lost PutRecords answer or a tracker crash); a deployment that
  needs them exact keeps the type in EVENTS_TABLE_TYPES. An event stored as an item before the
  setting left its type out, and copied afterwards, is counted again the same way.
- CONVERSION keeps its items whatever the setting says, whenever attribution is on: the item is
  where a conversion's decision is made and kept. The matcher decides a parked conversion (its
  click not stored yet) by a conditional write on the PENDING item (settling.py `_mark`); with
  no item it waits, then drops the parked record as an orphan, and the conversion's attribution
  would never be counted. A redelivered conversion takes its decision back from its item
  (decider `_keep_stored`) instead of deciding again. Conversions are few and leaving them out
  cannot work, so a list without CONVERSION is honoured for the other types only, and a
  warning says so at start.
- CLICK may be left out: attribution judges conversions by the attribution table's click
  records (written from every click with a window, item or not), never by click items. Privacy
  export and erasure find events through items (EVENTS_TABLE's user_key index), so they reach
  neither the events of a type left out (the lake keeps those) nor, for erasure, the click
  record of a click without an item: it holds nothing of the person and expires a day after
  its window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from consumers.attribution.decider import Settled, StreamAttribution, conversion_amounts
from consumers.attribution.table import AttributionTable, botocore_calls
from consumers.aws import attribution_calls
from consumers.dead_letters import DeadLetter, DeadLetterTable
from consumers.event_items import (
    EventFormatError,
    Item,
    ItemRules,
    decode_event,
    event_item,
    event_primary_key,
    item_user_key,
)
from consumers.events_writer import EventsWriter, Rejected, item_key
from consumers.metrics import ConsumerMetrics
from consumers.personal_data import redacted, scrubbed
from consumers.records import StreamRecord
from consumers.rollups.tally import fold
from consumers.rollups.writer import RollupWriter
from consumers.settings import ConsumerSettings
from consumers.stored_copies import ORIGIN, StoredCopies, botocore_batch_get, origin
from consumers.suppression import SuppressionList, Verdict
from consumers.user_items import UserItems, primary_key
from tracker.events.kpl import AggregationError, deaggregate
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from consumers.aws import LeanCalls

log = logging.getLogger(__name__)

# Every event type the setting can name (EVENTS_TABLE_TYPES); an unspecified or unknown one
# (a newer producer's) is always stored: what we do not understand we keep.
EVENT_TYPES = frozenset(number for number in pb.EventType.values() if number)


class Suppression(NamedTuple):
    """What the processor needs to honour suppressions."""

    users: SuppressionList
    items: UserItems  # to delete what a slow write stored for a user suppressed meanwhile


@dataclass
class _Batch:
    items: list[Item] = field(default_factory=list)
    # Events of a type that gets no item, one per key (the first record of a key stands for
    # it): only their keys (and user key), for suppression, attribution and the rollups.
    unstored: list[Item] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    # Where each item came from, and its event, in case DynamoDB refuses it outright.
    origins: dict[tuple[str, str], tuple[DeadLetter, pb.TrackingEvent]] = field(
        default_factory=dict
    )

    def refused(self, rejected: Rejected) -> DeadLetter:
        letter, event = self.origins[item_key(rejected.item)]
        reason = redacted(rejected.reason, event)
        return letter._replace(raw=scrubbed(event), error=reason, scrubbed=True)


class Rollups(NamedTuple):
    """What keeps the reporting rollups: the check that drops copies of stored events, and the
    writer of the counters (consumers/stored_copies.py, consumers/rollups/)."""

    copies: StoredCopies
    writer: RollupWriter


class EventStores(NamedTuple):
    """Where the processor puts what it reads: the events, the records it cannot decode, the
    suppression list that keeps a suppressed user's events out (None: not checked), the
    rollups (None: none kept) and conversion attribution (None: none; it needs the rollups'
    copy check)."""

    events: EventsWriter
    dead_letters: DeadLetterTable
    suppression: Suppression | None = None
    rollups: Rollups | None = None
    attribution: StreamAttribution | None = None


class EventsProcessor:
    def __init__(
        self,
        stream: str,
        stores: EventStores,
        metrics: ConsumerMetrics,
        rules: ItemRules,
        item_types: frozenset[int] = EVENT_TYPES,
    ) -> None:
        """`item_types`: the event types stored as items (EVENTS_TABLE_TYPES); see above."""
        self._stream = stream
        self._writer = stores.events
        self._dead_letters = stores.dead_letters
        self._metrics = metrics
        self._rules = rules
        self._suppression = stores.suppression
        self._rollups = stores.rollups
        self._attribution = stores.attribution
        self._itemless = _itemless(item_types, stores.attribution is not None)

    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        started = time.perf_counter()
        batch = _Batch()
        for record in records:
            self._decode(shard_id, record, batch)
        verdict = await self._admit(batch)
        settled = await self._settle(batch)
        rejected, *_ = await asyncio.gather(
            self._writer.write(batch.items),
            self._record_clicks(settled),
            *(self._dead_letters.put(letter) for letter in batch.letters),
        )
        await asyncio.gather(*(self._dead_letters.put(batch.refused(r)) for r in rejected))
        await self._count(shard_id, batch, rejected, settled)
        await self._confirm(verdict, batch.items)
        self._metrics.records.inc(len(records))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        log.debug(
            "batch stored",
            extra={
                "shard": shard_id,
                "records": len(records),
                "items": len(batch.items),
                "dead_letters": len(batch.letters) + len(rejected),
            },
        )

    async def _settle(self, batch: _Batch) -> Settled | None:
        """Drop copies of stored events (the rollups' check), then decide the conversions; the
        events without items go through attribution too (their clicks' records), unwritten."""
        if self._rollups is None:
            return None
        firsts = await self._rollups.copies.firsts(batch.items)
        batch.items = firsts.items
        if self._attribution is None:
            return None
        events = {key: event for key, (_, event) in batch.origins.items()}
        seen = [*batch.items, *batch.unstored]
        settled = await self._attribution.settle(seen, firsts.stored, events)
        batch.items = settled.items
        if batch.unstored:  # never a conversion (_itemless): settle gives them back as they were
            unstored = {item_key(i) for i in batch.unstored}
            batch.items = [i for i in settled.items if item_key(i) not in unstored]
        return settled

    async def _record_clicks(self, settled: Settled | None) -> None:
        if self._attribution is not None and settled is not None and settled.clicks:
            await self._attribution.record_clicks(settled.clicks)

    async def _count(
        self, shard_id: str, batch: _Batch, rejected: list[Rejected], settled: Settled | None
    ) -> None:
        """Add the stored events to the rollups (after the write: a record whose item is not
        stored yet must not be counted, or a kill between the two would count it twice)."""
        if self._rollups is None:
            return
        refused = {item_key(r.item) for r in rejected}
        stored = [batch.origins[k] for i in batch.items if (k := item_key(i)) not in refused]
        stored += [batch.origins[item_key(i)] for i in batch.unstored]
        if settled is not None:
            stored += [batch.origins[item_key(i)] for i in settled.waiting]
        amounts = conversion_amounts(settled, (event for _, event in stored))
        groups = fold(((event, letter.sequence_number) for letter, event in stored), amounts)
        await self._rollups.writer.apply(shard_id, groups)

    async def _admit(self, batch: _Batch) -> Verdict | None:
        """Drop the events of suppressed users from the batch; None when nothing was asked."""
        keys = _user_keys(batch.items) | _user_keys(batch.unstored)
        if self._suppression is None or not keys:
            return None
        verdict = await self._suppression.users.check(keys)
        if verdict.suppressed:
            batch.items = self._unsuppressed(batch.items, verdict)
            batch.unstored = self._unsuppressed(batch.unstored, verdict)
        return verdict

    def _unsuppressed(self, items: list[Item], verdict: Verdict) -> list[Item]:
        kept = [i for i in items if item_user_key(i) not in verdict.suppressed]
        self._metrics.events_suppressed.inc(len(items) - len(kept))
        return kept

    async def _confirm(self, verdict: Verdict | None, written: list[Item]) -> None:
        """After a write slower than the cache time, delete what is now suppressed."""
        if verdict is None or self._suppression is None:
            return
        if not self._suppression.users.stale(verdict):
            return
        late = await self._suppression.users.check(_user_keys(written), fresh=True)
        gone = [primary_key(i) for i in written if item_user_key(i) in late.suppressed]
        if gone:
            await self._suppression.items.delete(gone)
            self._metrics.events_suppressed.inc(len(gone))

    def _decode(self, shard_id: str, record: StreamRecord, batch: _Batch) -> None:
        try:
            user_records = deaggregate(record.data, record.partition_key)
        except AggregationError as exc:
            batch.letters.append(self._letter(shard_id, record, record.data, str(exc)))
            return
        for index, user_record in enumerate(user_records):
            sub_index = index if len(user_records) > 1 else None
            try:
                event = decode_event(user_record.data)
            except EventFormatError as exc:
                batch.letters.append(
                    self._unfit(shard_id, record, user_record.data, exc, sub_index)
                )
                continue
            if event.event_type in self._itemless:
                self._add_unstored(shard_id, record, event, sub_index, batch)
                continue
            item = event_item(event, self._rules)
            item[ORIGIN] = {"S": origin(shard_id, record.sequence_number, sub_index)}
            letter = self._letter(shard_id, record, b"", "", sub_index)
            # The first record of a key stands for it, as in StoredCopies.firsts: a copy later
            # in the batch must not lend the kept event its (higher) position. A key first
            # seen without an item stays so (only a foreign producer reuses a key across types).
            _, first = batch.origins.setdefault(item_key(item), (letter, event))
            if first is event or first.event_type not in self._itemless:
                batch.items.append(item)

    def _add_unstored(
        self,
        shard_id: str,
        record: StreamRecord,
        event: pb.TrackingEvent,
        sub_index: int | None,
        batch: _Batch,
    ) -> None:
        """An event without an item: its key only. A key seen earlier in the batch (a copy, or
        a foreign event sharing a stored one's key) is dropped: the first record stands."""
        keyed = _key_only(event, self._rules)
        key = item_key(keyed)
        if key in batch.origins:
            self._metrics.duplicate_events.inc()
            return
        batch.origins[key] = (self._letter(shard_id, record, b"", "", sub_index), event)
        batch.unstored.append(keyed)

    def _unfit(
        self,
        shard_id: str,
        record: StreamRecord,
        raw: bytes,
        error: EventFormatError,
        sub_index: int | None,
    ) -> DeadLetter:
        letter = self._letter(shard_id, record, raw, str(error), sub_index)
        if error.event is None:
            return letter  # no TrackingEvent at all: the bytes are all there is
        # A TrackingEvent with a bad field: keep the event, not its personal fields.
        return letter._replace(raw=scrubbed(error.event), scrubbed=True)

    def _letter(
        self,
        shard_id: str,
        record: StreamRecord,
        raw: bytes,
        error: str,
        sub_index: int | None = None,
    ) -> DeadLetter:
        return DeadLetter(self._stream, shard_id, record.sequence_number, raw, error, sub_index)


def _user_keys(items: Sequence[Item]) -> set[str]:
    return {key for item in items if (key := item_user_key(item)) is not None}


def _key_only(event: pb.TrackingEvent, rules: ItemRules) -> Item:
    """What the batch keeps of an event that gets no item: the key its item would have (so a
    copy finds it) and its user key (suppression)."""
    keyed: Item = event_primary_key(event, rules)
    if event.user_key:
        keyed["user_key"] = {"S": event.user_key}
    return keyed


def _itemless(item_types: frozenset[int], attribution: bool) -> frozenset[int]:
    """The event types that get no item. Conversions always get theirs while attribution is on:
    their decision lives in it (see the module's docstring)."""
    left_out = EVENT_TYPES - item_types
    if attribution and pb.CONVERSION in left_out:
        log.warning(
            "EVENTS_TABLE_TYPES leaves out CONVERSION: conversions are stored as items all the "
            "same, attribution keeps its decisions in them"
        )
        left_out -= {pb.CONVERSION}
    return left_out


def build_events_processor(
    settings: ConsumerSettings,
    dynamodb: DynamoDBClient,
    dead_letters: DeadLetterTable,
    metrics: ConsumerMetrics,
    max_attempts: int | None = None,
    lean: LeanCalls | None = None,
) -> EventsProcessor:
    """The processor as the worker and the Lambda handler run it, suppression and rollups
    included; `lean` are the lean BatchWriteItem and BatchGetItem (consumers/aws.py)."""
    users = SuppressionList(dynamodb, settings.privacy, metrics, max_attempts)
    events = settings.events_table
    batch_get = botocore_batch_get(dynamodb) if lean is None else lean.get
    stores = EventStores(
        EventsWriter(dynamodb, events, metrics, max_attempts, lean and lean.write),
        dead_letters,
        Suppression(users, UserItems(dynamodb, events, max_attempts)),
        Rollups(
            StoredCopies(batch_get, events, metrics, max_attempts),
            RollupWriter(
                dynamodb, settings.rollup_table, metrics, max_attempts, lean and lean.item
            ),
        ),
        _attribution(settings, dynamodb, metrics, max_attempts, lean),
    )
    rules = ItemRules(settings.events_ttl_days, settings.events_table_buckets)
    return EventsProcessor(
        settings.event_stream, stores, metrics, rules, settings.events_table_types
    )


def _attribution(
    settings: ConsumerSettings,
    dynamodb: DynamoDBClient,
    metrics: ConsumerMetrics,
    max_attempts: int | None,
    lean: LeanCalls | None,
) -> StreamAttribution:
    calls = botocore_calls(dynamodb) if lean is None else attribution_calls(lean)
    table = AttributionTable(settings.attribution.table, calls, metrics, max_attempts)
    wait = settings.attribution.match_wait_seconds
    return StreamAttribution(table, settings.events_table, wait, metrics)
