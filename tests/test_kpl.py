"""The KPL aggregated record format: packing by hand, unpacking with the generated classes."""

from __future__ import annotations

import asyncio
import os

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import StartTracker
from tests.support.kinesis import read_records
from tests.support.programs import STANDARD, write_programs
from tracker.events.entry import Entry
from tracker.events.kpl import MAX_AGGREGATE_BYTES, deaggregate, is_aggregated, pack
from tracker.schema.tracking.v1 import tracking_pb2 as pb


@given(st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=300))
def test_packed_records_unpack_to_the_same_events_in_order(payloads: list[bytes]) -> None:
    entries = [Entry(os.urandom(16).hex(), data) for data in payloads]
    packed = pack(entries, max_bytes=8000)
    assert sum(record.events for record in packed) == len(entries)
    unpacked = [u for record in packed for u in deaggregate(record.data, record.partition_key)]
    assert [u.data for u in unpacked] == payloads
    assert all(is_aggregated(record.data) for record in packed)


def test_records_stay_within_the_size_unless_one_event_alone_is_larger() -> None:
    entries = [Entry(f"{n:032x}", os.urandom(200)) for n in range(2000)]
    packed = pack(entries)
    assert all(len(record.data) <= MAX_AGGREGATE_BYTES for record in packed)
    assert len(packed) < len(entries) / 200
    big = pack([Entry("k", os.urandom(70_000)), Entry("k2", b"x")])
    assert [record.events for record in big] == [1, 1]


def test_a_plain_record_is_not_taken_for_an_aggregate() -> None:
    data = pb.TrackingEvent(programid="p", message_id="m").SerializeToString()
    assert not is_aggregated(data)
    assert [u.data for u in deaggregate(data, "k")] == [data]


async def test_the_tracker_ships_aggregated_records_when_asked(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker(SHIP_AGGREGATE="true", SHIP_LINGER_MS="200")
    for _ in range(300):
        assert (await client.get("/v1/pixel", params={"program": "live"})).status == 200
    records: list[bytes] = []
    for _ in range(100):
        records = await read_records(kinesalite_url, event_stream)
        events = [u for r in records for u in deaggregate(r, "")]
        if len(events) >= 300:
            break
        await asyncio.sleep(0.1)
    assert len(events) == 300
    assert len(records) <= 10
    decoded = [pb.TrackingEvent.FromString(u.data) for u in events]
    assert len({e.message_id for e in decoded}) == 300
    assert {e.programid for e in decoded} == {"live"}
