"""The integrity part's HTTP cases: the pixel with a browser's and a crawler's user agent, and a
signed click with and without the duplicate check, each group on a tracker of its own settings;
and what the tracker counted for each case (what it classified, what Redis answered).

Every request of a run comes from one client (127.0.0.1, one user agent), so after the first
request the crawler memo always hits, and every click but the first of a tracker is a duplicate:
with the duplicate check on, each click costs a `SET NX` in Redis after its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.browser import USER_AGENT
from bench.cases import HEY, WRK, Case
from bench.demo_programs import DEMO_PIXEL
from bench.metrics_probe import metric_value, scrape
from bench.procstat import cpu_seconds
from bench.signed_links import SIGNING_KEYS_TEXT, link, unsigned_link
from bench.user_agents import GOOGLEBOT
from tracker.schema.tracking.v1 import tracking_pb2 as pb

BROWSER = f"User-Agent: {USER_AGENT}"
CRAWLER = f"User-Agent: {GOOGLEBOT}"
# The counters read around each case (metric, labels as in the exposition).
IVT_EVENTS = "tracker_events_by_ivt_total"
DUPLICATE_CHECKS = "tracker_duplicate_click_checks_total"
CHECK_RESULTS = ("first", "duplicate", "unchecked")
REDIS_CPU = "redis_cpu_seconds"


@dataclass(frozen=True)
class Group:
    """Cases that share one tracker and its settings."""

    settings: str  # for the report: what differs from the defaults
    extra: dict[str, str]
    cases: list[Case]


def groups() -> list[Group]:
    """The defaults (pixel: hey's own user agent, a browser's, Googlebot's); signing keys with
    the duplicate check on (its default, 30 s) and off; and for reference the same click
    unsigned, without keys or duplicate check, so that the signature's cost and the Redis
    round trip's show apart. The signed link is made now, valid for 30 days."""
    keys = {"CLICK_SIGNING_KEYS": SIGNING_KEYS_TEXT}
    off = {"DUPLICATE_CLICK_SECONDS": "0"}
    return [
        Group(
            "defaults",
            {},
            [
                # What every other table's pixel measures: hey sends hey/0.0.1, not a crawler.
                Case("pixel, hey's own user agent", DEMO_PIXEL, 100, 1, client=HEY),
                Case(
                    "pixel, browser user agent", DEMO_PIXEL, 100, 1, headers=(BROWSER,), client=WRK
                ),
                Case(
                    "pixel, crawler user agent", DEMO_PIXEL, 100, 1, headers=(CRAWLER,), client=WRK
                ),
            ],
        ),
        Group("CLICK_SIGNING_KEYS", keys, [_click("click, signed link", link())]),
        Group(
            "CLICK_SIGNING_KEYS, DUPLICATE_CLICK_SECONDS=0",
            {**keys, **off},
            [_click("click, signed link, duplicate check off", link())],
        ),
        Group(
            "DUPLICATE_CLICK_SECONDS=0",
            off,
            [_click("click, same link unsigned, duplicate check off", unsigned_link())],
        ),
    ]


def _click(name: str, path: str) -> Case:
    return Case(name, path, 100, 1, expected_status=302, headers=(BROWSER,), client=WRK)


def observer(redis_pid: int | None) -> Callable[[str], dict[str, float]]:
    """What a case is checked by, read before and after it: the tracker's events by ivt (and how
    many of them billable), its duplicate checks by result, and the CPU Redis spent."""

    def observe(metrics_url: str) -> dict[str, float]:
        text = scrape(metrics_url)
        seen = {
            name: metric_value(text, IVT_EVENTS, f'ivt="{name}"')
            for name in pb.InvalidTraffic.keys()  # noqa: SIM118 (a protobuf enum, no __iter__)
        }
        seen["billable"] = metric_value(text, IVT_EVENTS, 'billable="true"')
        for result in CHECK_RESULTS:
            seen[f"duplicate_check_{result}"] = metric_value(
                text, DUPLICATE_CHECKS, f'result="{result}"'
            )
        if redis_pid is not None:
            seen[REDIS_CPU] = cpu_seconds(redis_pid)
        return seen

    return observe


def integrity_row(row: dict[str, Any], settings: str) -> dict[str, Any]:
    """A case's summary with its settings, and Redis's CPU per tracker request."""
    observed = row.get("observed", {})
    redis_cpu = observed.pop(REDIS_CPU, None)
    per_request = (
        round(1e6 * redis_cpu / row["requests"], 1)
        if redis_cpu is not None and row["requests"]
        else None
    )
    return {**row, "settings": settings, "redis_cpu_us_per_request": per_request}
