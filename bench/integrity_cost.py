"""The traffic-integrity checks alone, in process: what each costs per request on each of its
paths (the crawler memo's hit and miss, the prefetch headers, a click's signature, the bound on
a request's head that every read passes), the whole
classification as the handler runs it for a pixel and for a signed click, and with --redis-url the
duplicate check's own work through the tracker's Redis client to a real redis-server
(bench/duplicate_cost.py; bench.run measures that inside its stack).

    .venv/bin/python -m bench.integrity_cost [--quick] [--runs N] [--redis-url URL]

The inputs are what aiohttp hands the request path: a new `str` per request for the user agent
(so its hash is computed on every lookup, as in the tracker: copies are made afresh for each
repetition, outside the clock), a `CIMultiDictProxy` of a browser's image-request headers, and
`request.query` as aiohttp builds it (a `MultiDictProxy` from yarl). The classification is the
real `TrackingHandlers._invalid_traffic`, called with the request's `RequestFacts` on a stand-in
that holds only the detector and the verifier it reads.

As in bench/privacy_cost.py, a path's figure is made as bench/micro.py says. A memo miss
(~200 us) runs on a new `CrawlerDetector` per repetition, over user agents that differ from each
other, so that no call of a repetition hits (crawlerdetect's own 1,024-entry cache included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, cast

from bench import micro
from bench.browser import USER_AGENT, Headers, headers
from bench.demo_programs import DEMO_PIXEL, DEMO_PROGRAM_ID
from bench.duplicate_cost import IN_FLIGHT, duplicate_check_redis
from bench.micro import Path, loop_seconds, per_call, scaled
from bench.request_query import Query, query_parse, request_query
from bench.signed_links import (
    LINK_DAYS,
    LINK_PARAMS,
    SIGNING_KEYS_TEXT,
    distinct_links,
    link,
    tampered,
    unsigned_link,
)
from bench.user_agents import GOOGLEBOT, browser_agents, crawler_agents, fresh, fresh_each
from tracker.handlers import TrackingHandlers
from tracker.head_bound import HeadBound
from tracker.integrity.crawlers import CrawlerDetector
from tracker.integrity.prefetch import is_prefetch
from tracker.integrity.signing import LinkVerifier, parse_signing_keys
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb

# Calls per repetition (a quarter with --quick). A crawler memo miss costs ~200 us, so its
# loops are short; they stay under crawlerdetect's own 1,024-entry cache and our 8,192.
HIT_CALLS, MISS_CALLS, CHECK_CALLS, DUPLICATE_CALLS = 20_000, 400, 5_000, 5_000


def _noop(item: object) -> bool:
    return False


# --- the crawler memo ----------------------------------------------------------------------------


def crawler_hit(agent: str, crawler: bool, calls: int) -> Callable[[], float]:
    detector = CrawlerDetector()
    detector.is_crawler(agent)  # the memo holds it, as after a client's first request

    def repetition() -> float:
        agents = fresh(agent, calls)
        elapsed = loop_seconds(detector.is_crawler, agents)
        assert detector.is_crawler(agents[-1]) is crawler
        return per_call(elapsed, calls)

    return repetition


def crawler_miss(agents: list[str], crawler: bool) -> Callable[[], float]:
    def repetition() -> float:
        detector = CrawlerDetector()  # empty memos; the patterns are compiled once per process
        elapsed = loop_seconds(detector.is_crawler, fresh_each(agents))
        assert all(detector.is_crawler(agent) is crawler for agent in agents), "misclassified"
        return per_call(elapsed, len(agents))

    return repetition


def crawler_paths(hits: int, misses: int) -> list[Path]:
    browsers, crawlers = browser_agents(misses), crawler_agents(misses)
    mean_browser = sum(map(len, browsers)) // len(browsers)
    mean_crawler = sum(map(len, crawlers)) // len(crawlers)
    return [
        Path(
            "crawler memo hit, browser user agent",
            f"is_crawler: a dict lookup of a new {len(USER_AGENT)}-character str (hashed)",
            hits,
            crawler_hit(USER_AGENT, False, hits),
        ),
        Path(
            "crawler memo hit, Googlebot",
            f"the same for Googlebot's {len(GOOGLEBOT)} characters",
            hits,
            crawler_hit(GOOGLEBOT, True, hits),
        ),
        Path(
            "crawler memo miss, browser user agents",
            f"a new browser user agent per call (Chrome, Safari, Firefox, Edge; ~{mean_browser} "
            "chars): crawlerdetect's exclusions and its whole pattern, no match",
            misses,
            crawler_miss(browsers, False),
        ),
        Path(
            "crawler memo miss, crawler user agents",
            f"a new crawler user agent per call (Googlebot, bingbot, AhrefsBot, GPTBot, ...; "
            f"~{mean_crawler} chars): the pattern until it matches",
            misses,
            crawler_miss(crawlers, True),
        ),
    ]


# --- prefetch ------------------------------------------------------------------------------------


def prefetch(request_headers: Headers, expected: bool, calls: int) -> Callable[[], float]:
    inputs = [request_headers] * calls  # lookups cache nothing in the headers

    def repetition() -> float:
        elapsed = loop_seconds(is_prefetch, inputs)
        assert is_prefetch(request_headers) is expected
        return per_call(elapsed, calls)

    return repetition


def prefetch_paths(calls: int) -> list[Path]:
    chromium = headers(USER_AGENT, ("Sec-Purpose", "prefetch;prerender"))
    firefox = headers(USER_AGENT, ("X-Moz", "prefetch"))
    return [
        Path(
            "is_prefetch, browser headers without a purpose",
            "three lookups that miss (Sec-Purpose, Purpose, X-Moz) in ten headers",
            calls,
            prefetch(headers(USER_AGENT), False, calls),
        ),
        Path(
            "is_prefetch, Sec-Purpose: prefetch;prerender",
            "Chromium's prefetch: one lookup, lowered and searched",
            calls,
            prefetch(chromium, True, calls),
        ),
        Path(
            "is_prefetch, X-Moz: prefetch",
            "Firefox's prefetch: the third lookup",
            calls,
            prefetch(firefox, True, calls),
        ),
    ]


# --- signed links --------------------------------------------------------------------------------


def _loop_check(verifier: LinkVerifier, path: str, queries: Sequence[Query], now: float) -> float:
    check = verifier.check
    started = time.perf_counter()
    for query in queries:
        check(path, query, now)
    return time.perf_counter() - started


def link_check(path_and_query: str, expected: int, calls: int) -> Callable[[], float]:
    verifier = LinkVerifier(parse_signing_keys(SIGNING_KEYS_TEXT))
    # A new query per call, as aiohttp makes one per request (the verifier caches nothing).
    queries = [request_query(path_and_query) for _ in range(calls)]
    path = path_and_query.partition("?")[0]

    def repetition() -> float:
        now = time.time()
        elapsed = _loop_check(verifier, path, queries, now)
        assert verifier.check(path, queries[-1], now) == expected
        return per_call(elapsed, calls)

    return repetition


def link_paths(calls: int, signed: str) -> list[Path]:
    return [
        Path(
            "LinkVerifier.check, valid link",
            f"program + {len(LINK_PARAMS)} params + exp, kid, sig ({len(signed)} chars): fields, "
            "canonical message, HMAC-SHA256 from the keyed copy, compare",
            calls,
            link_check(signed, pb.IVT_NONE, calls),
        ),
        Path(
            "LinkVerifier.check, tampered link",
            "one signed value changed: the same work, the digests differ",
            calls,
            link_check(tampered(signed), pb.IVT_BAD_SIGNATURE, calls),
        ),
        Path(
            "LinkVerifier.check, unsigned click",
            f"program + {len(LINK_PARAMS)} params, no sig: refused at the fields, no HMAC",
            calls,
            link_check(unsigned_link(), pb.IVT_BAD_SIGNATURE, calls),
        ),
    ]


# --- the whole classification, as the handler runs it --------------------------------------------


def _classifying_handler(agent: str) -> TrackingHandlers:
    """A stand-in holding what `_invalid_traffic` reads: the crawler memo (`agent` in it, so
    that every lookup hits) and the link verifier."""
    detector = CrawlerDetector()
    detector.is_crawler(agent)
    verifier = LinkVerifier(parse_signing_keys(SIGNING_KEYS_TEXT))
    return cast(
        TrackingHandlers,
        SimpleNamespace(_crawlers=detector, _known_crawler=detector.known.get, _links=verifier),
    )


def classification(
    path_and_query: str, agent: str, event_type: int, expected: int, calls: int
) -> Callable[[], float]:
    """`TrackingHandlers._invalid_traffic` itself: the crawler memo (a hit), the prefetch
    headers, and for a click the signature. One request's facts per call, each with its own
    query as aiohttp makes one per request; a new user agent str in each per repetition."""
    handler = _classifying_handler(agent)
    invalid_traffic = TrackingHandlers._invalid_traffic
    path = path_and_query.partition("?")[0]
    request = cast(Any, SimpleNamespace(path=path))  # the handler reads request.path alone
    request_headers = headers(agent)
    requests = [
        RequestFacts(request_query(path_and_query), request_headers, event_type, DEMO_PROGRAM_ID)
        for _ in range(calls)
    ]

    def repetition() -> float:
        now = time.time()
        for facts, user_agent in zip(requests, fresh(agent, calls), strict=True):
            facts.user_agent, facts.now = user_agent, now
        started = time.perf_counter()
        for facts in requests:
            invalid_traffic(handler, request, facts)
        elapsed = time.perf_counter() - started
        last = invalid_traffic(handler, request, requests[-1])
        assert last == expected, (last, expected)
        return per_call(elapsed, calls)

    return repetition


def classification_paths(hits: int, checks: int, signed: str) -> list[Path]:
    return [
        Path(
            "classification, pixel, browser (the defaults)",
            "_invalid_traffic: crawler memo hit, then the prefetch headers",
            hits,
            classification(DEMO_PIXEL, USER_AGENT, pb.IMPRESSION, pb.IVT_NONE, hits),
        ),
        Path(
            "classification, pixel, Googlebot",
            "_invalid_traffic: crawler memo hit, a crawler: no further check",
            hits,
            classification(DEMO_PIXEL, GOOGLEBOT, pb.IMPRESSION, pb.IVT_KNOWN_CRAWLER, hits),
        ),
        Path(
            "classification, signed click, browser",
            "_invalid_traffic: LinkVerifier.check, then the crawler memo hit and prefetch headers",
            checks,
            classification(signed, USER_AGENT, pb.CLICK, pb.IVT_NONE, checks),
        ),
    ]


# --- for scale -----------------------------------------------------------------------------------


def noop_path(calls: int) -> Path:
    inputs = fresh(USER_AGENT, calls)
    return Path(
        "no-op call, one argument (the loop and the call)",
        "a function returning False, called as is_crawler and is_prefetch are",
        calls,
        lambda: per_call(loop_seconds(_noop, inputs), calls),
    )


def query_paths(calls: int, signed: str) -> list[Path]:
    return [
        Path(
            "request.query, pixel URL (for scale)",
            f"aiohttp's URL and query for {DEMO_PIXEL}, the same URL each call (yarl's cache)",
            calls,
            query_parse([DEMO_PIXEL] * calls),
        ),
        Path(
            "request.query, signed click URL (for scale)",
            f"the same for the signed link ({len(signed)} chars), the same URL each call",
            calls,
            query_parse([signed] * calls),
        ),
        Path(
            "request.query, a new signed click URL per call (for scale)",
            "signed links differing in their campaign: yarl's URL cache misses, the query is "
            "parsed",
            calls,
            query_parse(distinct_links(calls)),
        ),
    ]


# --- the head bound ------------------------------------------------------------------------------


class _Swallowed(asyncio.Protocol):
    """Stands for aiohttp's protocol behind the bound: takes every read, does nothing."""

    def data_received(self, data: bytes) -> None:
        pass


def _pixel_request() -> bytes:
    lines = [f"GET {DEMO_PIXEL} HTTP/1.1", "Host: tracker.example"]
    lines += [f"{name}: {value}" for name, value in headers(USER_AGENT).items() if name != "Host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def head_bound_paths(calls: int) -> list[Path]:
    """What HeadBound adds to every read (tracker.head_bound): a pixel's request read whole,
    and the same request in three reads (a head that arrives in parts)."""
    request = _pixel_request()
    whole = [bytes(request) for _ in range(calls)]
    third = len(request) // 3
    parts = [request[:third], request[third : 2 * third], request[2 * third :]] * calls
    return [
        Path(
            "HeadBound.data_received, a pixel's request in one read",
            f"a browser's pixel request ({len(request)} bytes), then a no-op protocol: the "
            "bound's cost on every request, the call to aiohttp's protocol included",
            calls,
            lambda: per_call(loop_seconds(HeadBound(_Swallowed()).data_received, whole), calls),
        ),
        Path(
            "HeadBound.data_received, the same request in three reads",
            "per read: the count carried across reads (rfind, the carried bytes)",
            3 * calls,
            lambda: per_call(loop_seconds(HeadBound(_Swallowed()).data_received, parts), 3 * calls),
        ),
    ]


# --- the set -------------------------------------------------------------------------------------


def paths(quick: bool) -> list[Path]:
    """Every row of the report that needs no Redis, in its order."""
    hits, misses = scaled(HIT_CALLS, quick), scaled(MISS_CALLS, quick)
    checks = scaled(CHECK_CALLS, quick)
    signed = link()
    return [
        noop_path(hits),
        *crawler_paths(hits, misses),
        *prefetch_paths(hits),
        *link_paths(checks, signed),
        *classification_paths(hits, checks, signed),
        *query_paths(checks, signed),
        *head_bound_paths(hits),
    ]


def redis_paths(redis_url: str, quick: bool) -> list[Path]:
    """The paths that need a redis-server (run by bench.run inside its stack)."""
    calls = scaled(DUPLICATE_CALLS, quick)
    return [
        Path(
            "duplicate check with the tracker's Redis client (CPU)",
            f"as the row without Redis, through core._request_path_client to a local "
            f"redis-server, {IN_FLIGHT} checks in flight: this process's CPU per click",
            calls,
            duplicate_check_redis(redis_url, calls),
        )
    ]


def measure(quick: bool = False, runs: int = 1, redis_url: str | None = None) -> dict[str, Any]:
    """Every path `runs` times; per path the median of the runs' medians and their range. With
    `redis_url` the paths that need Redis too."""
    repetitions = micro.repetition_count(quick)
    chosen = paths(quick) + (redis_paths(redis_url, quick) if redis_url else [])
    return {
        "runs": runs,
        "repetitions": repetitions,
        "link_params": len(LINK_PARAMS),
        "link_days": LINK_DAYS,
        "paths": micro.rows(chosen, runs, repetitions),
    }


def measure_redis(redis_url: str, quick: bool = False, runs: int = 1) -> list[dict[str, Any]]:
    """The rows of the paths that need Redis alone, in the form of measure()'s."""
    return micro.rows(redis_paths(redis_url, quick), runs, micro.repetition_count(quick))


def main() -> None:
    parser = micro.arguments(__doc__)
    parser.add_argument("--redis-url", help="a redis-server for the Redis client's path")
    args = parser.parse_args()
    micro.print_rows(measure(args.quick, micro.run_count(args), args.redis_url)["paths"])


if __name__ == "__main__":
    main()
