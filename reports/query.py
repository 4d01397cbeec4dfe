"""A report's parameters, parsed from a request's query (or `reports show`'s options).

Every string either gives a valid ReportQuery or raises BadParameter naming the parameter:
no input reaches the zone database, the date parser or the period walk unchecked. Unknown
parameters are ignored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from reports.periods import GRANULARITIES

FORMATS = ("json", "csv")
MAX_DAYS = {"hour": 31, "day": 366}
DEFAULT_DAYS = 7  # the last 7 days, today included
FIRST_YEAR, LAST_YEAR = 2000, 2100
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# IANA names: letters, digits, _ + - in /-separated parts. No dot, so no `..`; no leading `/`,
# so no absolute path; and the name must be one the zone database lists.
_ZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
_ZONE_MAX_CHARS = 64
_PROGRAM_MAX_BYTES = 1024  # a partition key may hold 2048 bytes; program ids are far shorter
# Listed by some zone databases but not zones a report may be in: the host's own zone, and
# tzdata's placeholder.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class BadParameter(ValueError):  # noqa: N818 (the name the server and CLI catch)
    """A query parameter is invalid; the server answers 400 with `name` and `message`."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True, slots=True)
class ReportQuery:
    first: date  # local dates in `zone`, both included
    last: date
    granularity: str  # "hour" or "day"
    tz: str  # the zone's IANA name, as asked
    zone: ZoneInfo
    format: str  # "json" or "csv"


def parse_query(params: Mapping[str, str], clock: Callable[[], float] = time.time) -> ReportQuery:
    """Parse `from`, `to`, `granularity`, `tz`, `format`; `clock` (epoch seconds) gives today.

    Defaults: tz UTC, granularity day, format json, to = today in tz, from = to - 6 days.
    """
    tz = params.get("tz") or "UTC"
    zone = parse_zone(tz)
    granularity = _choice(params, "granularity", GRANULARITIES, "day")
    output = _choice(params, "format", FORMATS, "json")
    today = datetime.fromtimestamp(clock(), zone).date()
    last = _date(params, "to") or today
    first = _date(params, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    _check_year("to", last)  # the defaults too: a clock far off must not walk centuries
    _check_year("from", first)
    if first > last:
        raise BadParameter("from", "must not be after to")
    days = (last - first).days + 1
    if days > MAX_DAYS[granularity]:
        limit = MAX_DAYS[granularity]
        raise BadParameter("to", f"a range of at most {limit} days by {granularity}, not {days}")
    return ReportQuery(first, last, granularity, tz, zone, output)


def check_program_id(program_id: str) -> None:
    """BadParameter("program") unless the id can be a DynamoDB key (1 to 1024 UTF-8 bytes)."""
    if not program_id or len(program_id.encode("utf-8", "replace")) > _PROGRAM_MAX_BYTES:
        raise BadParameter("program", "must be 1 to 1024 bytes")


def parse_zone(name: str) -> ZoneInfo:
    """The IANA zone of that name, or BadParameter("tz")."""
    if len(name) > _ZONE_MAX_CHARS or not _ZONE.fullmatch(name) or name in _NOT_ZONES:
        raise BadParameter("tz", "not an IANA time zone name")
    if name not in _zone_names():
        raise BadParameter("tz", "unknown time zone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadParameter("tz", "unknown time zone") from None


@cache
def _zone_names() -> frozenset[str]:
    # Listing the zone database reads it from disk: once per process.
    return frozenset(available_timezones())


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = params.get(name) or default
    if value not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}")
    return value


def _date(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise BadParameter(name, "not a date (YYYY-MM-DD)")
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, "not a date (YYYY-MM-DD)") from None
    _check_year(name, value)
    return value


def _check_year(name: str, value: date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise BadParameter(name, f"must be within the years {FIRST_YEAR} to {LAST_YEAR}")
