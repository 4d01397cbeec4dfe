"""The capacity model's sizing rules (bench/event_sizes.py): DynamoDB item sizes as DynamoDB
publishes them, and the events the model's traffic mix is made of."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from bench.event_sizes import KINDS, index_entry_size, item_size, mix_entries
from consumers.event_items import ItemRules, event_item
from tracker.events.kpl import deaggregate, pack
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from consumers.event_items import Item


def _item(attributes: dict[str, Any]) -> Item:
    return cast("Item", attributes)


def test_strings_binaries_and_booleans_count_their_name_and_bytes() -> None:
    assert item_size(_item({"ab": {"S": "xyz"}})) == 5
    assert item_size(_item({"ab": {"S": "é"}})) == 4  # UTF-8 bytes, not characters
    assert item_size(_item({"raw": {"B": b"\x00\x01"}})) == 5
    assert item_size(_item({"ok": {"BOOL": True}, "n": {"NULL": True}})) == 5


def test_numbers_take_a_byte_per_two_significant_digits_and_one_more() -> None:
    assert item_size(_item({"n": {"N": "7"}})) == 1 + 1 + 1
    assert item_size(_item({"n": {"N": "1733011200123"}})) == 1 + 7 + 1
    assert item_size(_item({"n": {"N": "1000"}})) == 1 + 1 + 1  # trailing zeros are trimmed
    assert item_size(_item({"n": {"N": "-12.50"}})) == 1 + 2 + 1


def test_a_map_costs_three_bytes_and_one_per_element() -> None:
    params = {"params": {"M": {"a": {"S": "1"}, "bc": {"S": "22"}}}}
    assert item_size(_item(params)) == 6 + 3 + (1 + 1 + 1) + (2 + 2 + 1)


def test_only_an_event_with_a_user_key_has_an_index_entry_of_its_keys() -> None:
    event = pb.TrackingEvent(programid="p1", message_id="m" * 32, timestamp_ms=1_700_000_000_000)
    rules = ItemRules(ttl_days=90, buckets=8)
    assert index_entry_size(event_item(event, rules)) == 0
    event.user_key = "0" * 32
    item = event_item(event, rules)
    keys = {name: item[name] for name in ("user_key", "event_key", "program_bucket")}
    # program_bucket is "p1#" and one digit
    assert index_entry_size(item) == item_size(keys) == (8 + 32) + (9 + 46) + (14 + 4)


def _samples() -> dict[str, bytes]:
    """One event per kind, the consent kinds with a user key, as the tracker would ship them."""
    samples = {}
    for kind in KINDS:
        event = pb.TrackingEvent(programid="p1", message_id="0" * 32, timestamp_ms=1)
        event.event_type = pb.CLICK if kind.name.startswith("click") else pb.IMPRESSION
        if "uid" in kind.name:
            event.user_key = "f" * 32
        samples[kind.name] = event.SerializeToString()
    return samples


def test_the_mix_holds_each_kind_in_its_share_with_fresh_ids_and_user_keys() -> None:
    assert abs(sum(kind.share for kind in KINDS) - 1.0) < 1e-9
    entries = mix_entries(_samples(), 10_000)
    events = [pb.TrackingEvent.FromString(entry.data) for entry in entries]
    assert len(entries) == 10_000
    assert len({e.message_id for e in events}) == 10_000
    assert all(
        entry.partition_key == e.message_id for entry, e in zip(entries, events, strict=True)
    )
    with_keys = [e.user_key for e in events if e.user_key]
    assert len(with_keys) == round(10_000 * 0.198) + round(10_000 * 0.002)
    assert len(set(with_keys)) == len(with_keys)
    clicks = sum(1 for e in events if e.event_type == pb.CLICK)
    assert clicks == round(10_000 * 0.007) + round(10_000 * 0.002) + round(10_000 * 0.001)


def test_the_mix_packs_into_aggregates_that_give_every_event_back() -> None:
    entries = mix_entries(_samples(), 2_000)
    packed = pack(entries)
    unpacked = [u.data for r in packed for u in deaggregate(r.data, r.partition_key)]
    assert unpacked == [entry.data for entry in entries]
