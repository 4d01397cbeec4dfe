"""Report periods (local hours and days of any zone as UTC quarter hours) and query parsing:
pure logic, no store."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.periods import (
    QUARTER,
    Period,
    PeriodIndex,
    bucket_name,
    bucket_span,
    parse_bucket,
    periods,
)
from reports.query import BadParameter, ReportQuery, check_program_id, parse_query

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = sorted(available_timezones() - {"localtime", "posixrules", "Factory"})


def labels(spans: list[Period]) -> list[str]:
    return [span.label for span in spans]


def clock_at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- periods ---------------------------------------------------------------------------------


def test_berlin_spring_forward_day_has_23_hours_and_no_2_oclock() -> None:
    spans = periods(date(2026, 3, 29), date(2026, 3, 29), "hour", BERLIN)
    assert len(spans) == 23
    assert labels(spans)[:4] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    assert spans[0].start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert spans[1].end == spans[2].start == datetime(2026, 3, 29, 1, tzinfo=UTC)
    assert spans[-1].end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert not any("T02:" in label for label in labels(spans))


def test_berlin_fall_back_day_has_25_hours_and_two_2_oclocks() -> None:
    spans = periods(date(2026, 10, 25), date(2026, 10, 25), "hour", BERLIN)
    assert len(spans) == 25
    assert labels(spans)[2:5] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert spans[2].start == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert spans[3].start == datetime(2026, 10, 25, 1, tzinfo=UTC)
    assert spans[-1].end - spans[0].start == timedelta(hours=25)


@pytest.mark.parametrize(
    ("zone", "day", "first_start", "first_label", "hours"),
    [
        (
            "UTC",
            date(2026, 5, 1),
            datetime(2026, 5, 1, tzinfo=UTC),
            "2026-05-01T00:00:00+00:00",
            24,
        ),
        (
            "Asia/Kolkata",
            date(2026, 5, 1),
            datetime(2026, 4, 30, 18, 30, tzinfo=UTC),
            "2026-05-01T00:00:00+05:30",
            24,
        ),
        (
            "Asia/Kathmandu",
            date(2026, 5, 1),
            datetime(2026, 4, 30, 18, 15, tzinfo=UTC),
            "2026-05-01T00:00:00+05:45",
            24,
        ),
        (
            "America/St_Johns",
            date(2026, 1, 15),
            datetime(2026, 1, 15, 3, 30, tzinfo=UTC),
            "2026-01-15T00:00:00-03:30",
            24,
        ),
        # Newfoundland springs forward at 02:00 local, -03:30 to -02:30.
        (
            "America/St_Johns",
            date(2026, 3, 8),
            datetime(2026, 3, 8, 3, 30, tzinfo=UTC),
            "2026-03-08T00:00:00-03:30",
            23,
        ),
        # Midnight itself was skipped (DST began at 00:00): the day starts at 01:00 -02:00.
        (
            "America/Sao_Paulo",
            date(2018, 11, 4),
            datetime(2018, 11, 4, 3, tzinfo=UTC),
            "2018-11-04T01:00:00-02:00",
            23,
        ),
    ],
)
def test_day_starts_at_its_first_local_instant(
    zone: str, day: date, first_start: datetime, first_label: str, hours: int
) -> None:
    hourly = periods(day, day, "hour", ZoneInfo(zone))
    assert len(hourly) == hours
    assert (hourly[0].start, hourly[0].label) == (first_start, first_label)
    [daily] = periods(day, day, "day", ZoneInfo(zone))
    assert daily == Period(first_start, hourly[-1].end, first_label)


def test_lord_howe_half_hour_dst_shift_gives_a_half_hour_row() -> None:
    spans = periods(date(2026, 10, 4), date(2026, 10, 4), "hour", ZoneInfo("Australia/Lord_Howe"))
    assert labels(spans)[1:3] == ["2026-10-04T01:00:00+10:30", "2026-10-04T02:30:00+11:00"]
    assert spans[1].end - spans[1].start == timedelta(hours=1)
    assert spans[-1].end - spans[0].start == timedelta(hours=23, minutes=30)


def test_days_are_consecutive_and_each_matches_its_hours() -> None:
    days = periods(date(2026, 3, 28), date(2026, 3, 30), "day", BERLIN)
    assert labels(days) == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]
    assert [d.end - d.start for d in days] == [timedelta(hours=h) for h in (24, 23, 24)]
    hours = periods(date(2026, 3, 28), date(2026, 3, 30), "hour", BERLIN)
    assert len(hours) == 71
    assert hours[0].start == days[0].start
    assert hours[-1].end == days[-1].end


def test_unknown_granularity_is_refused() -> None:
    with pytest.raises(ValueError, match="granularity"):
        periods(date(2026, 1, 1), date(2026, 1, 1), "week", BERLIN)


def local_hour(instant: datetime, zone: ZoneInfo) -> tuple[int, timedelta | None]:
    local = instant.astimezone(zone)
    return local.hour, local.utcoffset()


@given(
    zone=st.sampled_from(ZONES),
    first=st.dates(date(2000, 1, 1), date(2100, 12, 29)),
    extra=st.integers(0, 2),
)
def test_periods_tile_the_range_in_any_zone(zone: str, first: date, extra: int) -> None:
    tz = ZoneInfo(zone)
    last = first + timedelta(days=extra)
    hours = periods(first, last, "hour", tz)
    days = periods(first, last, "day", tz)
    assert len(days) == extra + 1
    assert (hours[0].start, hours[-1].end) == (days[0].start, days[-1].end)
    for spans in (hours, days):
        for span, after in itertools.pairwise(spans):
            assert span.end == after.start  # no gap, no overlap
        for span in spans:
            assert span.start < span.end
            assert span.start.minute % 15 == 0
            assert span.start.second == 0
            assert datetime.fromisoformat(span.label) == span.start  # the label is its start
    for span in hours:
        assert span.end - span.start <= timedelta(hours=1)
        # Every quarter of the hour shows the same local hour and offset; the next one not.
        assert local_hour(span.start, tz) == local_hour(span.end - QUARTER, tz)
        assert local_hour(span.end, tz) != local_hour(span.start, tz)
    for index, span in enumerate(days):
        assert span.start.astimezone(tz).date() == first + timedelta(days=index)
        assert (span.start - QUARTER).astimezone(tz).date() < first + timedelta(days=index)


# --- buckets ---------------------------------------------------------------------------------


def test_bucket_names_are_utc_quarter_hours() -> None:
    instant = datetime(2026, 3, 29, 3, 44, 59, 999, tzinfo=BERLIN)  # 01:44:59Z
    assert bucket_name(instant) == "2026-03-29T01:30Z"
    assert parse_bucket("2026-03-29T01:30Z") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    for bad in ("2026-03-29T01:10Z", "2026-02-30T01:00Z", "2026-03-29T01:00", "", "x" * 20):
        assert parse_bucket(bad) is None
    assert parse_bucket("２０２６-03-29T01:00Z") is None  # noqa: RUF001 (full-width digits)


def test_bucket_span_and_index() -> None:
    spans = periods(date(2026, 5, 1), date(2026, 5, 1), "hour", ZoneInfo("Asia/Kathmandu"))
    assert bucket_span(spans) == ("2026-04-30T18:15Z", "2026-05-01T18:00Z")
    index = PeriodIndex(spans)
    assert index.find(datetime(2026, 4, 30, 18, 0, tzinfo=UTC)) is None
    assert index.find(datetime(2026, 4, 30, 18, 15, tzinfo=UTC)) == 0
    assert index.find(datetime(2026, 4, 30, 19, 0, tzinfo=UTC)) == 0
    assert index.find(datetime(2026, 4, 30, 19, 15, tzinfo=UTC)) == 1
    assert index.find(datetime(2026, 5, 1, 18, 0, tzinfo=UTC)) == 23
    assert index.find(datetime(2026, 5, 1, 18, 15, tzinfo=UTC)) is None
    assert PeriodIndex([]).find(datetime(2026, 5, 1, tzinfo=UTC)) is None


# --- query parsing ---------------------------------------------------------------------------

NOON = clock_at("2026-03-29T12:00:00+00:00")


def query(**params: str) -> ReportQuery:
    return parse_query(params, clock=lambda: NOON)


def refused(name: str, **params: str) -> BadParameter:
    with pytest.raises(BadParameter) as caught:
        query(**params)
    assert caught.value.name == name
    return caught.value


def test_defaults_are_the_last_7_days_by_day_in_utc_as_json() -> None:
    parsed = query()
    assert (parsed.first, parsed.last) == (date(2026, 3, 23), date(2026, 3, 29))
    assert (parsed.granularity, parsed.tz, parsed.format) == ("day", "UTC", "json")
    assert parsed.zone == ZoneInfo("UTC")


def test_today_is_the_zones_today() -> None:
    late = clock_at("2026-03-29T23:30:00+00:00")
    assert parse_query({"tz": "Europe/Berlin"}, clock=lambda: late).last == date(2026, 3, 30)
    assert parse_query({"tz": "UTC"}, clock=lambda: late).last == date(2026, 3, 29)
    early = clock_at("2026-03-29T00:30:00+00:00")
    assert parse_query({"tz": "America/St_Johns"}, clock=lambda: early).last == date(2026, 3, 28)


def test_one_date_given_sets_the_other_by_default() -> None:
    assert query(to="2026-01-10").first == date(2026, 1, 4)
    assert (query(**{"from": "2026-03-01"}).first, query(**{"from": "2026-03-01"}).last) == (
        date(2026, 3, 1),
        date(2026, 3, 29),
    )


def test_range_limits() -> None:
    ok = query(**{"from": "2026-01-01", "to": "2026-01-31", "granularity": "hour"})
    assert (ok.last - ok.first).days + 1 == 31
    error = refused("to", **{"from": "2026-01-01", "to": "2026-02-01", "granularity": "hour"})
    assert "31" in error.message
    year = query(**{"from": "2024-01-01", "to": "2024-12-31", "granularity": "day"})
    assert (year.last - year.first).days + 1 == 366
    refused("to", **{"from": "2024-01-01", "to": "2025-01-01", "granularity": "day"})
    assert query(**{"from": "2026-01-05", "to": "2026-01-05"}).first == date(2026, 1, 5)
    refused("from", **{"from": "2026-01-06", "to": "2026-01-05"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from", "2026-1-05"),
        ("from", "05/01/2026"),
        ("to", "2026-02-30"),
        ("to", "2026-01-05T00:00"),
        ("from", "1999-12-31"),
        ("to", "2101-01-01"),
        ("to", "２０２６-01-05"),  # noqa: RUF001 (full-width digits)
        ("granularity", "week"),
        ("granularity", "HOUR"),
        ("format", "xml"),
        ("tz", "localtime"),
        ("tz", "Factory"),
        ("tz", "/etc/passwd"),
        ("tz", "../../etc/passwd"),
        ("tz", "Europe/../Berlin"),
        ("tz", "Europe//Berlin"),
        ("tz", "Europe/Berlin/"),
        ("tz", "Europe/Atlantis"),
        ("tz", "europe/berlin"),
        ("tz", "A" * 65),
        ("tz", "Europe/Berlin\x00"),
    ],
)
def test_bad_parameters_are_named(name: str, value: str) -> None:
    base = {"from": "2026-01-01", "to": "2026-01-02"}
    refused(name, **{**base, name: value})


def test_valid_zones_and_options_and_unknown_parameters() -> None:
    parsed = query(tz="Asia/Kathmandu", granularity="hour", format="csv", foo="bar")
    assert (parsed.tz, parsed.granularity, parsed.format) == ("Asia/Kathmandu", "hour", "csv")
    assert parsed.zone == ZoneInfo("Asia/Kathmandu")
    assert query(tz="Etc/GMT+5").zone == ZoneInfo("Etc/GMT+5")
    assert query(tz="", granularity="", format="").tz == "UTC"  # empty means default


def test_program_ids() -> None:
    check_program_id("prog-1")
    for bad in ("", "x" * 1025):
        with pytest.raises(BadParameter) as caught:
            check_program_id(bad)
        assert caught.value.name == "program"


PARAMETERS = ("from", "to", "granularity", "tz", "format", "other")
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["hour", "day", "csv", "json", "UTC", "Europe/Berlin", "Asia/Kathmandu"]),
    st.dates(date(1990, 1, 1), date(2110, 1, 1)).map(date.isoformat),
)


def parse_or_refusal(params: dict[str, str]) -> ReportQuery | BadParameter:
    try:
        return parse_query(params, clock=lambda: NOON)
    except BadParameter as error:
        return error


@given(st.dictionaries(st.sampled_from(PARAMETERS) | st.text(max_size=10), VALUES))
def test_any_parameters_give_a_query_or_bad_parameter(params: dict[str, str]) -> None:
    parsed = parse_or_refusal(params)
    if isinstance(parsed, BadParameter):
        assert parsed.name in PARAMETERS
        return
    days = (parsed.last - parsed.first).days + 1
    assert 1 <= days <= {"hour": 31, "day": 366}[parsed.granularity]
    assert parsed.format in ("json", "csv")
    spans = periods(parsed.first, parsed.last, parsed.granularity, parsed.zone)
    assert spans[0].start < spans[-1].end


@given(st.text(alphabet="ABEGMTUabceilnoprstu/._-+0123456789\\: ", max_size=40))
def test_any_zone_name_gives_a_zone_or_bad_parameter(name: str) -> None:
    parsed = parse_or_refusal({"tz": name})
    if isinstance(parsed, BadParameter):
        assert parsed.name == "tz"
        return
    assert parsed.tz == (name or "UTC")
    assert ".." not in name
    assert not name.startswith("/")
