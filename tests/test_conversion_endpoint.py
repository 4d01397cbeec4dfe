"""GET /v1/conversion: the parameters' parsers (with properties), the event part written by hand
against upb's, and the endpoint on a real tracker (real Redis and kinesalite): always the pixel,
good parameters exactly on the event, bad ones left out and counted, the click id only with
consent."""

from __future__ import annotations

import string
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from tests.conftest import Client, StartTracker
from tests.support.kinesis import read_events, wait_for_events
from tests.support.programs import STANDARD, write_programs
from tracker.app import CORE
from tracker.conversions import (
    MAX_CURRENCIES,
    MAX_VALUE_MICROS,
    PARAM_NAMES,
    ConversionFields,
    value_micros,
    varint,
)
from tracker.handlers import NO_CACHE, PIXEL_GIF
from tracker.schema.tracking.v1 import tracking_pb2 as pb

CLICK_ID = "0123456789abcdef0123456789abcdef"

# --- value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("0", 0),
        ("1", 1_000_000),
        ("12.5", 12_500_000),
        ("49.90", 49_900_000),
        ("0.000001", 1),
        ("007.5", 7_500_000),
        ("000000000000000000001", 1_000_000),
        ("999999999999", 999_999_999_999_000_000),
        ("999999999999.999999", MAX_VALUE_MICROS),
        ("1.100000", 1_100_000),
    ],
)
def test_good_values_are_exact_micros(text: str, micros: int) -> None:
    assert value_micros(text) == micros


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1e3",
        "1E3",
        "-1",
        "+1",
        "-0",
        "1.0000001",
        "1000000000000",
        "1000000000000.0",
        "١٢",  # Arabic-Indic digits
        "\uff11\uff12",  # fullwidth digits
        "²",
        "nan",
        "NaN",
        "inf",
        "Infinity",
        " 1",
        "1 ",
        "1\n",
        "1,5",
        "1.",
        ".5",
        "1..5",
        "1.5.1",
        "0x10",
        "1_000",
        "12.5€",
        "0" * 65,
        "9" * 5000,
    ],
)
def test_bad_values_are_none(text: str) -> None:
    assert value_micros(text) is None


@settings(max_examples=500, deadline=None, database=None)
@given(st.text(max_size=40) | st.from_regex(r"[0-9+\-.eE ]{0,24}", fullmatch=True))
def test_the_value_parser_never_raises_and_stays_in_bounds(text: str) -> None:
    micros = value_micros(text)
    assert micros is None or 0 <= micros <= MAX_VALUE_MICROS


@settings(max_examples=500, deadline=None, database=None)
@given(
    micros=st.integers(0, MAX_VALUE_MICROS),
    fraction_digits=st.integers(0, 6),
    leading_zeros=st.integers(0, 3),
)
def test_every_valid_decimal_round_trips(
    micros: int, fraction_digits: int, leading_zeros: int
) -> None:
    whole, fraction = divmod(micros, 1_000_000)
    fraction_text = f"{fraction:06d}"
    if fraction_text[fraction_digits:].strip("0"):
        fraction_digits = 6  # fewer digits would not hold it
    text = "0" * leading_zeros + str(whole)
    if fraction_digits:
        text += "." + fraction_text[:fraction_digits]
    assert value_micros(text) == micros
    assert Decimal(text) * 1_000_000 == micros


@settings(max_examples=300, deadline=None, database=None)
@given(st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,8})?", fullmatch=True))
def test_values_agree_with_decimal_arithmetic(text: str) -> None:
    exact = Decimal(text) * 1_000_000
    expected = int(exact) if exact == int(exact) and exact <= MAX_VALUE_MICROS else None
    if len(text.partition(".")[2]) > 6:
        expected = None  # more than six fraction digits: refused even when they are zeros
    assert value_micros(text) == expected


@given(st.integers(1, 2**63 - 1))  # upb writes no zero
def test_varint_is_upbs(number: int) -> None:
    assert varint(number) == pb.TrackingEvent(value_micros=number).SerializeToString()[2:]


# --- the event's part -----------------------------------------------------------------------


def query(**params: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(params))


_HEX = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
_ORDER = st.text(alphabet=string.ascii_letters + string.digits + "._:-", min_size=1, max_size=64)
_CURRENCY = st.text(alphabet=string.ascii_uppercase, min_size=3, max_size=3)
_VALUE = st.integers(0, MAX_VALUE_MICROS).map(lambda m: f"{m // 1_000_000}.{m % 1_000_000:06d}")


@settings(max_examples=300, deadline=None, database=None)
@given(
    click_id=st.none() | _HEX,
    order_id=st.none() | _ORDER,
    value=st.none() | _VALUE,
    currency=st.none() | _CURRENCY,
    withheld=st.booleans(),
)
def test_the_part_written_by_hand_is_upbs(
    click_id: str | None,
    order_id: str | None,
    value: str | None,
    currency: str | None,
    withheld: bool,
) -> None:
    given_params = {"click_id": click_id, "order_id": order_id, "value": value}
    given_params["currency"] = currency
    params = {name: text for name, text in given_params.items() if text is not None}
    fields = ConversionFields()
    part = fields.serialize(query(**params), withheld)
    expected = pb.TrackingEvent(
        click_id="" if withheld else click_id or "",
        order_id=order_id or "",
        value_micros=value_micros(value) or 0 if value is not None else 0,
        currency=currency or "",
    )
    assert part == expected.SerializeToString()
    assert fields.dropped == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("param", "text"),
    [
        ("click_id", ""),
        ("click_id", CLICK_ID.upper()),
        ("click_id", CLICK_ID + "0"),
        ("click_id", CLICK_ID[:-1]),
        ("click_id", CLICK_ID[:-1] + "g"),
        ("click_id", "\u0660" * 32),  # Arabic-Indic zeros
        ("order_id", ""),
        ("order_id", "o" * 65),
        ("order_id", "a b"),
        ("order_id", "a/b"),
        ("order_id", "é"),
        ("order_id", "a\n"),
        ("value", "1e3"),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", "EU"),
        ("currency", "ÉUR"),
        ("currency", ""),
    ],
)
def test_a_malformed_parameter_is_left_out_and_counted(param: str, text: str) -> None:
    fields = ConversionFields()
    assert fields.serialize(query(**{param: text}), withheld=False) == b""
    assert fields.counts() == {(name,): int(name == param) for name in PARAM_NAMES}


def test_withheld_the_click_id_is_not_read_and_the_rest_is_kept() -> None:
    fields = ConversionFields()
    part = fields.serialize(query(click_id="bad", order_id="o-1", currency="EUR"), withheld=True)
    event = pb.TrackingEvent.FromString(part)
    assert (event.click_id, event.order_id, event.currency) == ("", "o-1", "EUR")
    assert fields.dropped == [0, 0, 0, 0]


def test_a_repeated_parameter_is_read_once_the_first() -> None:
    repeated = MultiDictProxy(MultiDict([("order_id", "first"), ("order_id", "bad id")]))
    fields = ConversionFields()
    assert pb.TrackingEvent.FromString(fields.serialize(repeated, False)).order_id == "first"
    assert fields.dropped == [0, 0, 0, 0]


def test_a_currency_is_remembered_only_well_formed_and_every_bad_one_is_counted() -> None:
    fields = ConversionFields()
    euro = pb.TrackingEvent(currency="EUR").SerializeToString()
    for _ in range(3):
        assert fields.serialize(query(currency="EUR"), False) == euro
        assert fields.serialize(query(currency="eur"), False) == b""
    assert fields.dropped == [0, 0, 0, 3]


def test_the_remembered_currencies_are_bounded() -> None:
    fields = ConversionFields()
    letters = string.ascii_uppercase
    codes = [first + second + third for first in letters for second in "AB" for third in letters]
    assert len(codes) > MAX_CURRENCIES
    for code in codes:
        part = fields.serialize(query(currency=code), False)
        assert pb.TrackingEvent.FromString(part).currency == code
    assert len(fields._currencies) <= MAX_CURRENCIES
    assert fields.dropped == [0, 0, 0, 0]


# --- the endpoint ---------------------------------------------------------------------------

needs_redis = pytest.mark.usefixtures("redis_proc")
GOOD = {
    "program": "live",
    "click_id": CLICK_ID,
    "order_id": "SO-2024.01:7_x",
    "value": "999999999999.999999",
    "currency": "EUR",
    "utm_source": "mail",
}


async def _get(
    client: Client, params: Mapping[str, str], headers: dict[str, str] | None = None
) -> None:
    response = await client.get("/v1/conversion", params=params, headers=headers or {})
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Cache-Control"] == NO_CACHE
    assert await response.read() == PIXEL_GIF


def _dropped(client: Client) -> dict[str, float | None]:
    registry = client.app[CORE].metrics.registry
    name = "tracker_conversion_params_dropped_total"
    return {param: registry.get_sample_value(name, {"param": param}) for param in PARAM_NAMES}


@needs_redis
async def test_good_parameters_land_on_the_event_exactly(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    await _get(client, GOOD, {"User-Agent": "Mozilla/5.0", "Referer": "https://shop.example/ty"})
    await _get(client, {**GOOD, "value": "12.5", "order_id": "o2", "currency": "USD"})
    await _get(client, {**GOOD, "value": "0.000001", "order_id": "o3"})
    events = await wait_for_events(kinesalite_url, event_stream, 3)
    by_order = {e.order_id: e for e in events}
    first = by_order["SO-2024.01:7_x"]
    assert (first.event_type, first.validation, first.programid) == (pb.CONVERSION, pb.OK, "live")
    assert (first.click_id, first.value_micros, first.currency) == (CLICK_ID, 10**18 - 1, "EUR")
    assert dict(first.params) == {"utm_source": "mail"}
    assert first.user_agent == "Mozilla/5.0"
    assert first.attribution_window_days == 0
    assert (by_order["o2"].value_micros, by_order["o2"].currency) == (12_500_000, "USD")
    assert by_order["o3"].value_micros == 1
    assert _dropped(client) == dict.fromkeys(PARAM_NAMES, 0)
    stats = client.app[CORE].metrics.registry
    ok = {"route": "conversion", "outcome": "ok"}
    assert stats.get_sample_value("tracker_requests_total", ok) == 3


BAD_VALUES = ["1e3", "-1", "1.0000001", "1000000000000", "١٢", "nan", " 1", "+1", "inf", ""]


@needs_redis
async def test_hostile_parameters_are_left_out_and_counted_never_refused(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    for value in BAD_VALUES:
        await _get(client, {"program": "live", "value": value, "order_id": f"v{len(value)}"})
    hostile = {
        "program": "live",
        "click_id": "<script>" * 100,
        "order_id": "x" * 65,
        "value": "9" * 5000,
        "currency": "€UR",
    }
    await _get(client, hostile)
    events = await wait_for_events(kinesalite_url, event_stream, len(BAD_VALUES) + 1)
    assert len(events) == len(BAD_VALUES) + 1
    assert all(e.value_micros == 0 and e.event_type == pb.CONVERSION for e in events)
    last = next(e for e in events if not e.order_id)
    assert (last.click_id, last.currency, dict(last.params)) == ("", "", {})
    assert _dropped(client) == {
        "click_id": 1,
        "order_id": 1,
        "value": len(BAD_VALUES) + 1,
        "currency": 1,
    }


@needs_redis
@pytest.mark.parametrize("target", ["", "?program=", "?program=bad%20id", "?click_id=" + CLICK_ID])
async def test_without_a_well_formed_program_the_gif_is_answered_and_nothing_shipped(
    start_tracker: StartTracker, kinesalite_url: str, event_stream: str, target: str
) -> None:
    client = await start_tracker()
    response = await client.get("/v1/conversion" + target)
    assert (response.status, await response.read()) == (200, PIXEL_GIF)
    registry = client.app[CORE].metrics.registry
    malformed = {"route": "conversion", "outcome": "malformed"}
    assert registry.get_sample_value("tracker_requests_total", malformed) == 1
    assert await read_events(kinesalite_url, event_stream) == []


@needs_redis
@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"gdpr": "1"}, {}),
        ({"gdpr": "1", "gdpr_consent": "CPzHq4APzHq4AAHABBENDXCs"}, {}),
        ({}, {"Sec-GPC": "1"}),
        ({}, {"DNT": "1"}),
    ],
    ids=["gdpr-no-string", "gdpr-bad-string", "sec-gpc", "dnt"],
)
async def test_without_consent_the_click_id_is_not_kept(
    start_tracker: StartTracker,
    redis_url: str,
    kinesalite_url: str,
    event_stream: str,
    params: dict[str, str],
    headers: dict[str, str],
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    await _get(client, {**GOOD, **params}, headers)
    [event] = await wait_for_events(kinesalite_url, event_stream, 1)
    assert event.click_id == ""
    assert (event.order_id, event.value_micros, event.currency) == (
        GOOD["order_id"],
        10**18 - 1,
        "EUR",
    )
    assert event.consent == pb.CONSENT_DENIED or event.gpc
    assert "click_id" not in event.params
    assert _dropped(client)["click_id"] == 0


@needs_redis
async def test_a_servers_postback_is_recorded_like_a_browsers(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    for agent in ("curl/8.5.0", "python-requests/2.32.3"):
        await _get(client, {**GOOD, "order_id": agent[:4]}, {"User-Agent": agent})
    await _get(client, {**GOOD, "program": "nope", "order_id": "unknown"})
    events = {e.order_id: e for e in await wait_for_events(kinesalite_url, event_stream, 3)}
    assert set(events) == {"curl", "pyth", "unknown"}
    assert all(e.click_id == CLICK_ID and e.event_type == pb.CONVERSION for e in events.values())
    assert events["unknown"].validation == pb.UNKNOWN_PROGRAM
    assert events["curl"].validation == pb.OK
