"""Deciding a batch's conversions as the stream delivers them (ECS workers and Lambda alike).

For each conversion the batch stores (copies and suppressed users are gone already):
- stored before from this same record (a redelivery): its item's decision stands. A final one
  made here is counted again only if the rollups have not counted its record yet (positions);
  a PENDING one, or one the matcher decided, is left alone: not written, not counted here.
- new: NO_CONSENT / NO_CLICK_ID at once; else its click is looked up, in the batch first, then
  in the attribution table (one consistent read). Found: PROGRAM_MISMATCH, OUTSIDE_WINDOW, or
  ATTRIBUTED if it wins the claim on its order id (a conditional write), DUPLICATE if another
  conversion holds that claim. Not found: parked (consumers/attribution/matcher.py decides it
  later) and its item written PENDING, without holding up the shard.

The batch's clicks that were given a click id are recorded for the conversions to come.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from consumers.attribution import records
from consumers.attribution.rules import (
    ATTRIBUTED,
    DUPLICATE,
    PENDING,
    Click,
    Conversion,
    Decision,
    conversion_of,
    dedupe_key,
    judged,
    report_counts,
    without_click,
)
from consumers.attribution.table import AttributionTable
from consumers.event_items import Item
from consumers.events_writer import item_key
from consumers.metrics import ConsumerMetrics
from consumers.rollups.tally import rollup_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

BY_STREAM = "stream"
ItemKey = tuple[str, str]


class Settled(NamedTuple):
    items: list[Item]  # the batch's items to write, conversions with their decision
    decisions: dict[str, Decision]  # message id -> a decision made here, for the rollups
    clicks: list[dict[str, Any]]  # click records to write to the attribution table
    # Conversions stored but not written in the batch (parked, or left to the matcher): the
    # rollups still count them as events (validation); their attribution the matcher counts.
    waiting: list[Item]


class StreamAttribution:
    def __init__(
        self,
        table: AttributionTable,
        events_table: str,
        wait_seconds: int,
        metrics: ConsumerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._events_table = events_table
        self._wait = wait_seconds
        self._metrics = metrics
        self._clock = clock

    async def settle(
        self,
        items: Sequence[Item],
        stored: Mapping[ItemKey, Item],
        events: Mapping[ItemKey, pb.TrackingEvent],
    ) -> Settled:
        settled = Settled([], {}, [], [])
        fresh: list[tuple[Item, Conversion]] = []
        in_batch: dict[str, Click] = {}
        for item in items:
            key = item_key(item)
            event = events[key]
            if event.event_type == pb.CLICK and event.attribution_window_days > 0:
                settled.clicks.append(records.click_record(event))
                if not event.original_click_id:  # a double click's second: looked up later
                    in_batch[event.message_id] = _click_of(event)
            if event.event_type != pb.CONVERSION:
                settled.items.append(item)
            elif key in stored and "attribution" in stored[key]:
                _keep_stored(item, stored[key], settled)
            else:
                fresh.append((item, conversion_of(event)))
        if fresh:
            await self._settle_fresh(fresh, in_batch, events, settled)
        return settled

    async def record_clicks(self, clicks: Sequence[dict[str, Any]]) -> None:
        await self._table.record_clicks(clicks)

    async def _settle_fresh(
        self,
        fresh: list[tuple[Item, Conversion]],
        in_batch: Mapping[str, Click],
        events: Mapping[ItemKey, pb.TrackingEvent],
        settled: Settled,
    ) -> None:
        decided = await self._decide([c for _, c in fresh], in_batch)
        parking = []
        for item, conversion in fresh:
            decision = decided[conversion.message_id]
            with_decision(item, decision, BY_STREAM)
            if decision.attribution == PENDING:
                parking.append(self._park(item, conversion, events[item_key(item)]))
                settled.waiting.append(item)
                continue
            settled.items.append(item)
            settled.decisions[conversion.message_id] = decision
            self._metrics.conversions_decided.labels(decision.attribution, BY_STREAM).inc()
        await asyncio.gather(*parking)

    async def _decide(
        self, conversions: list[Conversion], in_batch: Mapping[str, Click]
    ) -> dict[str, Decision]:
        wanted = [c.click_id for c in conversions if without_click(c) is None]
        missing = [c for c in wanted if c not in in_batch]
        clicks = {**(await self._table.clicks(missing) if missing else {}), **in_batch}
        decided: dict[str, Decision] = {}
        claims = []
        for conversion in conversions:
            attribution = without_click(conversion)
            click = clicks.get(conversion.click_id)
            if attribution is None:
                attribution = PENDING if click is None else judged(conversion, click)
            if attribution == ATTRIBUTED and click is not None:
                claims.append(self._claim(conversion, click, decided))
            else:
                decided[conversion.message_id] = Decision(attribution)
        await asyncio.gather(*claims)
        return decided

    async def _claim(
        self, conversion: Conversion, click: Click, decided: dict[str, Decision]
    ) -> None:
        key = dedupe_key(conversion)
        won = await self._table.claim(key, conversion.message_id, conversion.timestamp_ms)
        decided[conversion.message_id] = Decision(ATTRIBUTED, click) if won else Decision(DUPLICATE)

    async def _park(self, item: Item, conversion: Conversion, event: pb.TrackingEvent) -> None:
        """The parked record first, then the item: a matcher that finds the record but no item
        yet leaves it for later; an item never exists without its record."""
        now_ms = int(self._clock() * 1000)
        program = rollup_key(event).program_id
        parked = records.Parked(conversion, item_key(item), program, now_ms)
        await self._table.park(parked, self._wait)
        await self._table.put_pending(self._events_table, item)
        self._metrics.conversions_parked.inc()


def conversion_amounts(
    settled: Settled | None, events: Iterable[pb.TrackingEvent]
) -> dict[str, dict[str, int]]:
    """Message id -> what its decision adds to the rollups, for the conversions decided here."""
    if settled is None or not settled.decisions:
        return {}
    decisions = settled.decisions
    return {
        event.message_id: report_counts(conversion_of(event), decisions[event.message_id])
        for event in events
        if event.message_id in decisions
    }


def _click_of(event: pb.TrackingEvent) -> Click:
    return Click(event.programid, event.timestamp_ms, event.billable, event.attribution_window_days)


def _keep_stored(item: Item, stored: Item, settled: Settled) -> None:
    """A redelivered conversion: a decision made on the stream is written and counted as it
    was; one still waiting, or decided by the matcher, is left to the matcher."""
    attribution = stored["attribution"]["S"]
    by = stored.get("attribution_by", {}).get("S")
    if attribution == PENDING or by != BY_STREAM:
        settled.waiting.append(item)
        return
    decision = stored_decision(stored)
    with_decision(item, decision, BY_STREAM)
    settled.items.append(item)
    settled.decisions[item["message_id"]["S"]] = decision


def stored_decision(item: Item) -> Decision:
    """The decision a decided conversion item holds (what with_decision wrote); its click, for
    ATTRIBUTED, only as far as the item keeps it: time and billability."""
    attribution = item["attribution"]["S"]
    click = None
    if attribution == ATTRIBUTED:
        billable = bool(item["click_billable"]["BOOL"])
        click = Click("", int(item["click_timestamp_ms"]["N"]), billable, 0)
    return Decision(attribution, click)


def with_decision(item: Item, decision: Decision, by: str) -> None:
    """The conversion item's attribution attributes (PENDING has no `attribution_by`)."""
    item["attribution"] = {"S": decision.attribution}
    if decision.attribution != PENDING:
        item["attribution_by"] = {"S": by}
    if decision.attribution == ATTRIBUTED and decision.click is not None:
        item["click_timestamp_ms"] = {"N": str(decision.click.timestamp_ms)}
        item["click_billable"] = {"BOOL": decision.click.billable}
