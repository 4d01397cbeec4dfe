"""Unit tests for tracker.events.anonymize and tracker.events.builder."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.facts import request_facts
from tracker.events.anonymize import anonymize_ip
from tracker.events.builder import (
    IDS_PER_DRAW,
    MAX_HEADER_TEXT,
    MAX_PARAM_VALUE,
    MAX_PARAMS,
    MAX_PARAMS_TEXT,
    EventFactory,
    extra_params,
    new_message_id,
)
from tracker.programs.model import Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.schema.tracking.v1.tracking_pb2 import TrackingEvent

HEX32 = re.compile(r"[0-9a-f]{32}")

# --- anonymize_ip ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.168.17.42", "192.168.17.0"),
        ("8.8.8.8", "8.8.8.0"),
        ("10.0.0.0", "10.0.0.0"),
        ("255.255.255.255", "255.255.255.0"),
        ("0.0.0.0", "0.0.0.0"),
    ],
)
def test_ipv4_last_octet_zeroed(address: str, expected: str) -> None:
    assert anonymize_ip(address) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("2001:db8:abcd:1234:5678:9abc:def0:1234", "2001:db8:abcd::"),
        ("2001:db8:abcd:ffff::1", "2001:db8:abcd::"),
        ("2001:0db8:00ab:0001::", "2001:db8:ab::"),
        ("::1", "::"),
        ("fe80::1%eth0", "fe80::"),
        ("2001:db8::", "2001:db8::"),
    ],
)
def test_ipv6_keeps_48_bits(address: str, expected: str) -> None:
    assert anonymize_ip(address) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("::ffff:cb00:714d", "203.0.113.0"),
        ("::FFFF:10.1.2.3", "10.1.2.0"),
    ],
)
def test_ipv4_mapped_ipv6_is_treated_as_ipv4(address: str, expected: str) -> None:
    assert anonymize_ip(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        None,
        "",
        "garbage",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.x",
        "a.b.c.d",
        "1.2.3.4 ",
        "1.2.3.256x",
        "2001:db8:::1",
        "::ffff:1.2.3",
        "unix:/var/run/socket",
        "1.2.3.4, 5.6.7.8",
    ],
)
def test_garbage_is_empty(address: str | None) -> None:
    assert anonymize_ip(address) == ""


@pytest.mark.parametrize(
    "address",
    ["999.999.999.999", "1..2.3", "01.2.3.4", "\u0661.\u0662.\u0663.\u0664", "1" * 300 + ".2.3.4"],
)
def test_malformed_dotted_quads_are_empty(address: str) -> None:
    assert anonymize_ip(address) == ""


def test_anonymized_ipv4_never_contains_the_last_octet() -> None:
    for last in range(1, 256):
        assert anonymize_ip(f"198.51.100.{last}") == "198.51.100.0"


# --- extra_params ----------------------------------------------------------------------------


def test_extra_params_keeps_well_formed_pairs_in_order() -> None:
    kept = extra_params([("utm_source", "news"), ("sub.id", "7"), ("a-b", "")])
    assert kept == {"utm_source": "news", "sub.id": "7", "a-b": ""}
    assert list(kept) == ["utm_source", "sub.id", "a-b"]


def test_extra_params_at_most_16() -> None:
    items = [(f"k{i}", str(i)) for i in range(40)]
    kept = extra_params(items)
    assert len(kept) == MAX_PARAMS == 16
    assert kept == {f"k{i}": str(i) for i in range(16)}


def test_extra_params_bad_keys_do_not_use_up_the_budget() -> None:
    items = [("bad key", "x")] * 30 + [(f"k{i}", "v") for i in range(20)]
    kept = extra_params(items)
    assert kept == {f"k{i}": "v" for i in range(16)}


@pytest.mark.parametrize("reserved", ["program", "customer"])
def test_extra_params_drops_reserved_keys(reserved: str) -> None:
    assert extra_params([(reserved, "p1"), ("x", "1")]) == {"x": "1"}


def test_extra_params_reserved_keys_are_case_sensitive() -> None:
    assert extra_params([("Program", "p1")]) == {"Program": "p1"}


@pytest.mark.parametrize(
    "key",
    ["", "k" * 33, "a b", "a/b", "a=b", "caf\u00e9", "a\nb", "<script>", "a;b", "a%20b"],
)
def test_extra_params_drops_bad_keys(key: str) -> None:
    assert extra_params([(key, "v"), ("ok", "1")]) == {"ok": "1"}


def test_extra_params_drops_key_with_trailing_newline() -> None:
    # re.match with '$' would accept it: '$' also matches before a final newline
    assert extra_params([("utm\n", "v")]) == {}


def test_extra_params_key_length_edge() -> None:
    assert extra_params([("k" * 32, "v")]) == {"k" * 32: "v"}


def test_extra_params_values_cut_to_256() -> None:
    kept = extra_params([("long", "v" * 1000), ("edge", "e" * 256), ("short", "s")])
    assert kept["long"] == "v" * MAX_PARAM_VALUE
    assert MAX_PARAM_VALUE == 256
    assert kept["edge"] == "e" * 256
    assert kept["short"] == "s"


def test_extra_params_values_total_at_most_1024_characters() -> None:
    items = [(f"k{i}", str(i % 10) * 200) for i in range(16)]
    kept = extra_params(items)
    assert MAX_PARAMS_TEXT == 1024
    assert sum(map(len, kept.values())) == MAX_PARAMS_TEXT
    assert list(kept) == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert kept["k5"] == "5" * 24  # the last one kept gets what is left
    assert extra_params([("a", "x" * 1024), ("b", "y")]) == {"a": "x" * 256, "b": "y"}


def test_extra_params_first_value_of_a_repeated_key_wins() -> None:
    assert extra_params([("k", "first"), ("k", "second")]) == {"k": "first"}


def test_extra_params_empty() -> None:
    assert extra_params([]) == {}


# --- message ids and EventFactory ------------------------------------------------------------


def test_message_ids_are_unique_32_hex() -> None:
    ids = [new_message_id() for _ in range(IDS_PER_DRAW * 8 + 3)]  # across several draws
    assert len(set(ids)) == len(ids)
    assert all(HEX32.fullmatch(i) for i in ids)


def test_a_forked_child_draws_its_own_message_ids() -> None:
    new_message_id()  # the parent now holds drawn, unused ids
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running pytest's teardown
        os.write(write_end, "".join(new_message_id() for _ in range(4)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child = pipe.read()
    parent = "".join(new_message_id() for _ in range(4))
    assert len(child) == len(parent) == 128
    assert child != parent


PROGRAM = Program(
    program_id="summer",
    program_name="Summer sale",
    customer_id=42,
    customer_name="ACME",
    checksum="abc123",
    valid=True,
    version=3,
    landing_url="https://shop.example.com/",
)


# The client's fields, as tracker.privacy.client_fields serializes them.
CLIENT = TrackingEvent(
    user_agent="Mozilla/5.0",
    referer="https://news.example.com/",
    client_ip_anonymized="203.0.113.0",
    consent=pb.CONSENT_GRANTED,
    visitor_id="a" * 32,
    user_key="b" * 32,
).SerializeToString()


def build(factory: EventFactory | None = None, **overrides: Any) -> tuple[str, bytes]:
    fields: dict[str, Any] = {
        "event_type": pb.CLICK,
        "validation": pb.OK,
        "program_id": "summer",
        "program": PROGRAM,
        "timestamp_ms": 1_700_000_000_123,
        "client": CLIENT,
        "customer": 42,
        "query": {"utm_source": "news", "sub": "7"},
    }
    fields.update(overrides)
    factory = factory or EventFactory("tracker-a")
    ivt = fields.pop("ivt", pb.IVT_NONE)
    outcome = factory.outcomes[fields["event_type"], fields["validation"], ivt]
    return factory.build(outcome, request_facts(**fields))


# The event types' own fields: a conversion's and a click's window (never both on one event;
# here together to see that the factory carries whatever part it is given).
OWN_FIELDS = TrackingEvent(
    click_id="c" * 32,
    order_id="A-1:2.3_4",
    value_micros=12_500_000,
    currency="EUR",
    attribution_window_days=30,
    original_click_id="d" * 32,
).SerializeToString()


def test_build_carries_every_field() -> None:
    message_id, data = build(fields=OWN_FIELDS)
    event = TrackingEvent.FromString(data)
    assert HEX32.fullmatch(message_id)
    assert event.programid == "summer"
    assert event.checksum == "abc123"
    assert event.customer_id == 42
    assert event.user_agent == "Mozilla/5.0"
    assert event.program_name == "Summer sale"
    assert event.customer_name == "ACME"
    assert event.is_valid is True
    assert event.message_id == message_id
    assert event.event_type == pb.CLICK
    assert event.timestamp_ms == 1_700_000_000_123
    assert event.validation == pb.OK
    assert event.client_ip_anonymized == "203.0.113.0"
    assert event.referer == "https://news.example.com/"
    assert dict(event.params) == {"utm_source": "news", "sub": "7"}
    assert event.tracker_instance == "tracker-a"
    assert event.requested_customer_id == 42
    assert event.consent == pb.CONSENT_GRANTED
    assert event.visitor_id == "a" * 32
    assert event.user_key == "b" * 32
    assert event.gpc is False
    assert event.ivt == pb.IVT_NONE
    assert event.billable is True
    assert (event.click_id, event.order_id) == ("c" * 32, "A-1:2.3_4")
    assert (event.value_micros, event.currency) == (12_500_000, "EUR")
    assert event.attribution_window_days == 30
    assert event.original_click_id == "d" * 32
    # every field declared in the schema was checked above
    assert {f.name for f in TrackingEvent.DESCRIPTOR.fields} == {
        "programid",
        "checksum",
        "customer_id",
        "user_agent",
        "program_name",
        "customer_name",
        "is_valid",
        "message_id",
        "event_type",
        "timestamp_ms",
        "validation",
        "client_ip_anonymized",
        "referer",
        "params",
        "tracker_instance",
        "requested_customer_id",
        "consent",
        "visitor_id",
        "user_key",
        "gpc",
        "ivt",
        "billable",
        "click_id",
        "order_id",
        "value_micros",
        "currency",
        "attribution_window_days",
        "original_click_id",
    }


def test_build_uses_a_message_id_drawn_before() -> None:
    """A click given a click id: the id in its redirect is its event's message_id."""
    message_id, data = build(message_id="d" * 32)
    assert message_id == "d" * 32
    assert TrackingEvent.FromString(data).message_id == "d" * 32
    assert build()[0] != build()[0]


@pytest.mark.parametrize(
    ("event_type", "kept"),
    [
        (pb.CONVERSION, {"utm_source": "news"}),
        (pb.IMPRESSION, {"utm_source": "news", "click_id": "x", "order_id": "o", "value": "1"}),
    ],
)
def test_only_a_conversion_keeps_its_parameters_out_of_params(
    event_type: int, kept: dict[str, str]
) -> None:
    query = {"utm_source": "news", "click_id": "x", "order_id": "o", "value": "1"}
    _, data = build(event_type=event_type, query=query)
    assert dict(TrackingEvent.FromString(data).params) == kept


def test_a_conversion_with_only_its_own_parameters_has_no_params() -> None:
    _, data = build(event_type=pb.CONVERSION, query={"currency": "EUR", "value": "1"})
    assert dict(TrackingEvent.FromString(data).params) == {}


@pytest.mark.parametrize(
    "validation",
    [pb.UNKNOWN_PROGRAM, pb.INACTIVE, pb.OUTSIDE_WINDOW, pb.CUSTOMER_MISMATCH, pb.UNVERIFIED],
)
def test_is_valid_only_for_ok(validation: int) -> None:
    event = TrackingEvent.FromString(build(validation=validation)[1])
    assert event.validation == validation
    assert event.is_valid is False


@pytest.mark.parametrize("ivt", pb.InvalidTraffic.values())
@pytest.mark.parametrize("validation", pb.Validation.values())
def test_billable_only_when_valid_and_no_invalid_traffic(validation: int, ivt: int) -> None:
    event = TrackingEvent.FromString(build(validation=validation, ivt=ivt)[1])
    assert event.ivt == ivt
    assert event.billable is (validation == pb.OK and ivt == pb.IVT_NONE)


@pytest.mark.parametrize("event_type", [pb.IMPRESSION, pb.CLICK, pb.EVENT])
def test_event_type_is_recorded(event_type: int) -> None:
    assert TrackingEvent.FromString(build(event_type=event_type)[1]).event_type == event_type


def test_build_without_program_leaves_program_fields_empty() -> None:
    _, data = build(program=None, program_id="ghost", validation=pb.UNKNOWN_PROGRAM)
    event = TrackingEvent.FromString(data)
    assert event.programid == "ghost"
    assert event.checksum == ""
    assert event.customer_id == 0
    assert event.program_name == ""
    assert event.customer_name == ""
    assert event.is_valid is False


def test_build_without_customer_parameter_records_zero() -> None:
    event = TrackingEvent.FromString(build(customer=0)[1])
    assert event.requested_customer_id == 0


def test_build_cuts_the_instance_id() -> None:
    _, data = build(EventFactory("i" * 2000), query={})
    event = TrackingEvent.FromString(data)
    assert event.tracker_instance == "i" * MAX_HEADER_TEXT
    assert MAX_HEADER_TEXT == 512


def test_build_message_ids_are_unique_per_event() -> None:
    factory = EventFactory("tracker-a")
    results = [build(factory) for _ in range(500)]
    ids = [mid for mid, _ in results]
    assert len(set(ids)) == 500
    assert all(HEX32.fullmatch(mid) for mid in ids)
    assert all(TrackingEvent.FromString(data).message_id == mid for mid, data in results)


# One factory for every example, so that its memos are both hit and missed along the way.
SHARED_FACTORY = EventFactory("tracker-shared")
_TEXT = st.text(max_size=600)  # beyond MAX_HEADER_TEXT, any code point


@given(
    event_type=st.sampled_from(pb.EventType.values()),
    validation=st.sampled_from(pb.Validation.values()),
    program_id=st.sampled_from(["summer", "winter", "ghost"]),
    timestamp_ms=st.sampled_from([1_700_000_000_000, 1_700_000_000_001, 2**62]),
    user_agent=st.sampled_from(["Mozilla/5.0", ""]) | _TEXT,
    client_ip=st.sampled_from(["203.0.113.0", "2001:db8:1::", ""]),
    customer=st.none() | st.integers(min_value=-1, max_value=2**31),
    params=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_build_parses_as_the_event_built_field_by_field(
    event_type: int,
    validation: int,
    program_id: str,
    timestamp_ms: int,
    user_agent: str,
    client_ip: str,
    customer: int | None,
    params: dict[str, str],
) -> None:
    program = PROGRAM if program_id == "summer" else None
    facts = request_facts(
        program_id=program_id,
        program=program,
        timestamp_ms=timestamp_ms,
        event_type=event_type,
        validation=validation,
        query=params,
        client=TrackingEvent(
            user_agent=user_agent, client_ip_anonymized=client_ip
        ).SerializeToString(),
        customer=customer or 0,
    )
    outcome = SHARED_FACTORY.outcomes[event_type, validation, pb.IVT_NONE]
    message_id, data = SHARED_FACTORY.build(outcome, facts)
    expected = TrackingEvent(
        programid=program_id,
        tracker_instance="tracker-shared",
        message_id=message_id,
        event_type=event_type,  # type: ignore[arg-type]
        validation=validation,  # type: ignore[arg-type]
        is_valid=validation == pb.OK,
        billable=validation == pb.OK,
        timestamp_ms=timestamp_ms,
        user_agent=user_agent,
        client_ip_anonymized=client_ip,
        requested_customer_id=customer or 0,
        params=extra_params(params.items()),
    )
    if program is not None:
        expected.checksum = program.checksum
        expected.customer_id = program.customer_id
        expected.program_name = program.program_name
        expected.customer_name = program.customer_name
    assert TrackingEvent.FromString(data) == expected
