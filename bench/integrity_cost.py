"""The traffic-integrity checks alone, in process: what each costs per request on each of its
paths (the crawler memo's hit and miss, the prefetch headers, a click's signature), the whole
classification as the handler runs it for a pixel and for a signed click, and the duplicate
check's own work around a Redis stand-in (with --redis-url, also through the tracker's Redis
client to a real redis-server: bench.run measures that inside its stack).

    .venv/bin/python -m bench.integrity_cost [--quick] [--runs N] [--redis-url URL]

The inputs are what aiohttp hands the request path: a new `str` per request for the user agent
(so its hash is computed on every lookup, as in the tracker: copies are made afresh for each
repetition, outside the clock), a `CIMultiDictProxy` of a browser's image-request headers, and
`request.query` as aiohttp builds it (a `MultiDictProxy` from yarl). The classification is the
real `TrackingHandlers._invalid_traffic`, called on a stand-in that holds only the detector and
the verifier it reads.

As in bench/privacy_cost.py, a path's figure is the median over its repetitions of one loop's
time divided by its calls: per call, including the Python call and the loop (the no-op rows),
with the garbage collector on. A memo miss (~200 us) runs on a new `CrawlerDetector` per
repetition, over user agents that differ from each other, so that no call of a repetition hits
(crawlerdetect's own 1,024-entry cache included). Duplicate checks are submitted as the
handler submits them, 100 at a time (the HTTP cases' concurrency), and checked in pipelines.
With --runs N the whole set runs N times.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from types import SimpleNamespace
from typing import Any, cast

import uvloop
from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

from bench.privacy_cost import DAY, USER_AGENT, FixedSecrets, headers
from tracker.core import _request_path_client  # the tracker's own request-path client
from tracker.handlers import TrackingHandlers
from tracker.integrity.crawlers import CrawlerDetector
from tracker.integrity.duplicates import UNCHECKED, DuplicateClicks
from tracker.integrity.prefetch import is_prefetch
from tracker.integrity.signing import LinkVerifier, parse_signing_keys, signed_click_url
from tracker.privacy.client_fields import MAX_USER_AGENT
from tracker.privacy.daily_secret import DailySecrets
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.settings import TrackerSettings

# Not a secret: the bench's own click signing key, also given to its tracker process.
SIGNING_KEYS_TEXT = "bench:" + base64.b64encode(bytes(range(100, 132))).decode()
SIGNING_KEY = parse_signing_keys(SIGNING_KEYS_TEXT)[0]
PROGRAM = "demo-shoes"
PIXEL = f"/v1/pixel?program={PROGRAM}"
# Three parameters an ad server puts in a click link (ids, all unreserved characters).
LINK_PARAMS = (("campaign", "c-20261201"), ("creative", "cr-48213"), ("site", "news.example.com"))
LINK_DAYS = 30
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ADDRESS = "203.0.113.57"
SEED = 11  # the same user agents in every run

# Calls per repetition (a quarter with --quick). A crawler memo miss costs ~200 us, so its
# loops are short; they stay under crawlerdetect's own 1,024-entry cache and our 8,192.
HIT_CALLS, MISS_CALLS, CHECK_CALLS, DUPLICATE_CALLS = 20_000, 400, 5_000, 5_000
REPETITIONS, QUICK_REPETITIONS = 15, 5
MAX_SECONDS_PER_PATH = 10.0  # after at least MIN_REPETITIONS, no more repetitions past this
MIN_REPETITIONS = 3
IN_FLIGHT = 100  # duplicate checks pending at once against Redis: the HTTP cases' concurrency

# The day's visitor secret always at hand, as in a running tracker once it has fetched it.
FIXED_SECRETS = cast(DailySecrets, FixedSecrets(bytes(range(32))))
Headers = CIMultiDictProxy[str]
Query = MultiDictProxy[str]


# --- inputs --------------------------------------------------------------------------------------


def link(params: Sequence[tuple[str, str]] = LINK_PARAMS, days: int = LINK_DAYS) -> str:
    """The path and query of a signed click link, as the tracker receives it."""
    expires_at = int(time.time()) + days * 86_400
    url = signed_click_url("http://127.0.0.1", PROGRAM, params, SIGNING_KEY, expires_at)
    return url.removeprefix("http://127.0.0.1")


def unsigned_link(params: Sequence[tuple[str, str]] = LINK_PARAMS) -> str:
    """The same click without exp, kid and sig."""
    query = "&".join(f"{key}={value}" for key, value in [("program", PROGRAM), *params])
    return f"/v1/click?{query}"


def request_query(path_and_query: str) -> Query:
    """`request.query` as aiohttp makes it: yarl's URL from the request target, then its query."""
    path, _, query_string = path_and_query.partition("?")
    return URL.build(path=path, query_string=query_string, encoded=True).query


def distinct_links(count: int) -> list[str]:
    """`count` signed links that differ in their campaign, as the links of many ads do."""
    return [link((("campaign", f"c-{n:08d}"), *LINK_PARAMS[1:])) for n in range(count)]


def tampered(path_and_query: str) -> str:
    """The link with one signed value changed: the HMAC is computed, and does not match."""
    return path_and_query.replace("cr-48213", "cr-48214")


def fresh(text: str, count: int) -> list[str]:
    """`count` distinct str objects equal to `text`, none hashed yet: what the handler gets from
    aiohttp's parser on each request."""
    return [(text + " ")[:-1] for _ in range(count)]


def browser_agents(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct, realistic browser user agents: the browsers and versions that make most
    traffic, differing in their build numbers as successive releases do."""
    rng = random.Random(seed)
    phones = ("SM-S918B", "SM-A546B", "Pixel 8", "Pixel 7a", "moto g(60)", "22101316G", "K")
    iphone_os = ("17_6_1", "18_1", "18_2", "16_7_10")

    def chrome() -> str:
        return f"{rng.randint(118, 131)}.0.{rng.randint(6000, 6800)}.{rng.randint(1, 250)}"

    templates: list[Callable[[], str]] = [
        lambda: (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            f" Chrome/{chrome()} Safari/537.36"
        ),
        lambda: (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like"
            f" Gecko) Chrome/{chrome()} Safari/537.36"
        ),
        lambda: (
            f"Mozilla/5.0 (Linux; Android {rng.randint(10, 14)}; {rng.choice(phones)})"
            f" AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome()} Mobile Safari/537.36"
        ),
        lambda: (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {rng.choice(iphone_os)} like Mac OS X)"
            f" AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{rng.randint(16, 18)}."
            f"{rng.randint(0, 6)} Mobile/15E148 Safari/604.1"
        ),
        lambda: firefox(rng.randint(115, 133)),
        lambda: (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            f" Chrome/{chrome()} Safari/537.36 Edg/{chrome()}"
        ),
    ]
    return _distinct(rng, templates, count)


def firefox(version: int) -> str:
    return (
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{version}.0) Gecko/20100101"
        f" Firefox/{version}.0"
    )


def crawler_agents(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct user agents of the crawlers that visit ad-carrying pages most (search,
    SEO, social previews, AI, monitors), differing in their versions."""
    rng = random.Random(seed)

    def chrome() -> str:
        return f"{rng.randint(118, 131)}.0.{rng.randint(6000, 6800)}.{rng.randint(1, 250)}"

    templates: list[Callable[[], str]] = [
        lambda: (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36"
            f" (KHTML, like Gecko) Chrome/{chrome()} Mobile Safari/537.36 (compatible;"
            " Googlebot/2.1; +http://www.google.com/bot.html)"
        ),
        lambda: (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0;"
            f" +http://www.bing.com/bingbot.htm) Chrome/{chrome()} Safari/537.36"
        ),
        lambda: (
            f"Mozilla/5.0 (compatible; AhrefsBot/7.{rng.randint(0, 99)}; +http://ahrefs.com/robot/)"
        ),
        lambda: (
            f"Mozilla/5.0 (compatible; SemrushBot/7~bl{rng.randint(1, 99)};"
            " +http://www.semrush.com/bot.html)"
        ),
        lambda: (
            f"Mozilla/5.0 (compatible; YandexBot/3.{rng.randint(0, 99)}; +http://yandex.com/bots)"
        ),
        lambda: (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1."
            f"{rng.randint(0, 99)}; +https://openai.com/gptbot)"
        ),
        lambda: (
            f"facebookexternalhit/1.{rng.randint(0, 99)}"
            " (+http://www.facebook.com/externalhit_uatext.php)"
        ),
        lambda: (
            f"Mozilla/5.0+(compatible; UptimeRobot/2.{rng.randint(0, 99)};"
            " http://www.uptimerobot.com/)"
        ),
    ]
    return _distinct(rng, templates, count)


def _distinct(rng: random.Random, templates: list[Callable[[], str]], count: int) -> list[str]:
    """`count` distinct user agents, each from a template drawn at random."""
    agents: dict[str, None] = {}  # ordered and distinct
    for _ in range(count * 100):  # bounded: draws collide rarely
        agents[rng.choice(templates)()[:MAX_USER_AGENT]] = None
        if len(agents) == count:
            return list(agents)
    raise RuntimeError(f"{len(agents)} distinct user agents of {count} wanted")


# --- timed loops ---------------------------------------------------------------------------------


def _loop_one(call: Callable[[Any], object], inputs: Sequence[Any]) -> float:
    """Seconds for one call per input, a call with one argument (is_crawler, is_prefetch)."""
    started = time.perf_counter()
    for item in inputs:
        call(item)
    return time.perf_counter() - started


def _loop_check(verifier: LinkVerifier, path: str, queries: Sequence[Query], now: float) -> float:
    check = verifier.check
    started = time.perf_counter()
    for query in queries:
        check(path, query, now)
    return time.perf_counter() - started


def _noop(item: object) -> bool:
    return False


@dataclass(frozen=True)
class Path:
    name: str
    what: str  # one line for the report
    calls: int
    repetition: Callable[[], float]  # one repetition: microseconds per call


def _per_call(seconds: float, calls: int) -> float:
    return 1e6 * seconds / calls


# --- the crawler memo ----------------------------------------------------------------------------


def crawler_hit(agent: str, crawler: bool, calls: int) -> Callable[[], float]:
    detector = CrawlerDetector()
    detector.is_crawler(agent)  # the memo holds it, as after a client's first request

    def repetition() -> float:
        agents = fresh(agent, calls)
        elapsed = _loop_one(detector.is_crawler, agents)
        assert detector.is_crawler(agents[-1]) is crawler
        return _per_call(elapsed, calls)

    return repetition


def crawler_miss(agents: list[str], crawler: bool) -> Callable[[], float]:
    def repetition() -> float:
        detector = CrawlerDetector()  # empty memos; the patterns are compiled once per process
        elapsed = _loop_one(detector.is_crawler, fresh_each(agents))
        assert all(detector.is_crawler(agent) is crawler for agent in agents), "misclassified"
        return _per_call(elapsed, len(agents))

    return repetition


def fresh_each(agents: list[str]) -> list[str]:
    return [(agent + " ")[:-1] for agent in agents]


# --- prefetch ------------------------------------------------------------------------------------


def prefetch(request_headers: Headers, expected: bool, calls: int) -> Callable[[], float]:
    inputs = [request_headers] * calls  # lookups cache nothing in the headers

    def repetition() -> float:
        elapsed = _loop_one(is_prefetch, inputs)
        assert is_prefetch(request_headers) is expected
        return _per_call(elapsed, calls)

    return repetition


# --- signed links --------------------------------------------------------------------------------


def link_check(path_and_query: str, expected: int, calls: int) -> Callable[[], float]:
    verifier = LinkVerifier(parse_signing_keys(SIGNING_KEYS_TEXT))
    # A new query per call, as aiohttp makes one per request (the verifier caches nothing).
    queries = [request_query(path_and_query) for _ in range(calls)]
    path = path_and_query.partition("?")[0]

    def repetition() -> float:
        now = time.time()
        elapsed = _loop_check(verifier, path, queries, now)
        assert verifier.check(path, queries[-1], now) == expected
        return _per_call(elapsed, calls)

    return repetition


def query_parse(targets_: Sequence[str]) -> Callable[[], float]:
    """aiohttp's URL and `request.query` for each target: paid before any check sees it. yarl
    keeps the last 128 URLs it built (`build_pre_encoded_url`, an lru_cache) with their parsed
    query, so a target seen just before costs a lookup and a copy, a new one the parse."""
    targets = [target.partition("?") for target in targets_]
    calls = len(targets)

    def repetition() -> float:
        started = time.perf_counter()
        for path, _, query_string in targets:
            URL.build(path=path, query_string=query_string, encoded=True).query  # noqa: B018
        return _per_call(time.perf_counter() - started, calls)

    return repetition


# --- the whole classification, as the handler runs it --------------------------------------------


def classification(
    path_and_query: str, agent: str, event_type: int, expected: int, calls: int
) -> Callable[[], float]:
    """`TrackingHandlers._invalid_traffic` itself on a stand-in holding its two attributes: the
    crawler memo (a hit), the prefetch headers, and for a click the signature."""
    detector = CrawlerDetector()
    detector.is_crawler(agent)
    verifier = LinkVerifier(parse_signing_keys(SIGNING_KEYS_TEXT))
    handler = cast(
        TrackingHandlers,
        SimpleNamespace(_crawlers=detector, _known_crawler=detector.known.get, _links=verifier),
    )
    invalid_traffic = TrackingHandlers._invalid_traffic
    path = path_and_query.partition("?")[0]
    request = cast(Any, SimpleNamespace(path=path))  # the handler reads request.path alone
    request_headers = headers(agent)
    queries = [request_query(path_and_query) for _ in range(calls)]

    def repetition() -> float:
        agents = fresh(agent, calls)
        now = time.time()
        started = time.perf_counter()
        for query, user_agent in zip(queries, agents, strict=True):
            invalid_traffic(handler, request, request_headers, query, event_type, user_agent, now)
        elapsed = time.perf_counter() - started
        last = invalid_traffic(
            handler, request, request_headers, queries[-1], event_type, agents[-1], now
        )
        assert last == expected, (last, expected)
        return _per_call(elapsed, calls)

    return repetition


# --- the duplicate check's own work --------------------------------------------------------------


def duplicate_check_redis(redis_url: str, calls: int) -> Callable[[], float]:
    """Clicks as the handler hands them over after their answers (`submit`), checked by the
    flusher in pipelines against a real redis-server through the tracker's own request-path
    client: the CPU this process spends per click (time.process_time: the key, the client's
    work and the hand-back, not Redis's), IN_FLIGHT clicks submitted at a time, as under the
    HTTP case's load."""
    settings = TrackerSettings.from_env({"REDIS_URL": redis_url})
    agents = fresh(USER_AGENT, calls)

    async def run() -> float:
        client = _request_path_client(settings)
        clicks = DuplicateClicks[str](client, FIXED_SECRETS, 30, settings.redis_timeout_seconds)
        handed_back: list[bool] = []
        clicks.on_checked = lambda _click, duplicate: handed_back.append(duplicate)
        flusher = asyncio.create_task(clicks.run())
        try:
            await _submit_all(clicks, agents[:IN_FLIGHT])  # untimed: the pool connects
            clicks.results = dict.fromkeys(clicks.results, 0)
            started = time.process_time()
            await _submit_all(clicks, agents)
            elapsed = time.process_time() - started
        finally:
            flusher.cancel()
            await client.aclose()
        assert len(handed_back) == IN_FLIGHT + calls
        # A pipeline over REDIS_TIMEOUT_MS gives up (unchecked): few may, here.
        assert clicks.results[UNCHECKED] <= calls // 20, clicks.results
        return _per_call(elapsed, calls)

    return lambda: uvloop.run(run())


async def _submit_all(clicks: DuplicateClicks[str], agents: Sequence[str]) -> None:
    for first in range(0, len(agents), IN_FLIGHT):
        for agent in agents[first : first + IN_FLIGHT]:
            clicks.submit(agent, PROGRAM, ADDRESS, agent, DAY)
        await clicks.settle()


def redis_paths(redis_url: str, quick: bool) -> list[Path]:
    """The paths that need a redis-server (run by bench.run inside its stack)."""
    calls = DUPLICATE_CALLS // (4 if quick else 1)
    return [
        Path(
            "duplicate check with the tracker's Redis client (CPU)",
            f"as the row without Redis, through core._request_path_client to a local "
            f"redis-server, {IN_FLIGHT} checks in flight: this process's CPU per click",
            calls,
            duplicate_check_redis(redis_url, calls),
        )
    ]


# --- the set -------------------------------------------------------------------------------------


def paths(quick: bool) -> list[Path]:
    scale = 4 if quick else 1
    hits, misses = HIT_CALLS // scale, MISS_CALLS // scale
    checks = CHECK_CALLS // scale
    signed, unsigned = link(), unsigned_link()
    browsers, crawlers = browser_agents(misses), crawler_agents(misses)
    mean_browser = sum(map(len, browsers)) // len(browsers)
    mean_crawler = sum(map(len, crawlers)) // len(crawlers)
    plain_headers = headers(USER_AGENT)
    chromium_prefetch = headers(USER_AGENT, ("Sec-Purpose", "prefetch;prerender"))
    firefox_prefetch = headers(USER_AGENT, ("X-Moz", "prefetch"))
    noop_inputs = fresh(USER_AGENT, hits)
    return [
        Path(
            "no-op call, one argument (the loop and the call)",
            "a function returning False, called as is_crawler and is_prefetch are",
            hits,
            lambda: _per_call(_loop_one(_noop, noop_inputs), hits),
        ),
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
        Path(
            "is_prefetch, browser headers without a purpose",
            "three lookups that miss (Sec-Purpose, Purpose, X-Moz) in ten headers",
            hits,
            prefetch(plain_headers, False, hits),
        ),
        Path(
            "is_prefetch, Sec-Purpose: prefetch;prerender",
            "Chromium's prefetch: one lookup, lowered and searched",
            hits,
            prefetch(chromium_prefetch, True, hits),
        ),
        Path(
            "is_prefetch, X-Moz: prefetch",
            "Firefox's prefetch: the third lookup",
            hits,
            prefetch(firefox_prefetch, True, hits),
        ),
        Path(
            "LinkVerifier.check, valid link",
            f"program + {len(LINK_PARAMS)} params + exp, kid, sig ({len(signed)} chars): fields, "
            "canonical message, HMAC-SHA256 from the keyed copy, compare",
            checks,
            link_check(signed, pb.IVT_NONE, checks),
        ),
        Path(
            "LinkVerifier.check, tampered link",
            "one signed value changed: the same work, the digests differ",
            checks,
            link_check(tampered(signed), pb.IVT_BAD_SIGNATURE, checks),
        ),
        Path(
            "LinkVerifier.check, unsigned click",
            f"program + {len(LINK_PARAMS)} params, no sig: refused at the fields, no HMAC",
            checks,
            link_check(unsigned, pb.IVT_BAD_SIGNATURE, checks),
        ),
        Path(
            "classification, pixel, browser (the defaults)",
            "_invalid_traffic: crawler memo hit, then the prefetch headers",
            hits,
            classification(PIXEL, USER_AGENT, pb.IMPRESSION, pb.IVT_NONE, hits),
        ),
        Path(
            "classification, pixel, Googlebot",
            "_invalid_traffic: crawler memo hit, a crawler: no further check",
            hits,
            classification(PIXEL, GOOGLEBOT, pb.IMPRESSION, pb.IVT_KNOWN_CRAWLER, hits),
        ),
        Path(
            "classification, signed click, browser",
            "_invalid_traffic: crawler memo hit, prefetch headers, LinkVerifier.check",
            checks,
            classification(signed, USER_AGENT, pb.CLICK, pb.IVT_NONE, checks),
        ),
        Path(
            "request.query, pixel URL (for scale)",
            f"aiohttp's URL and query for {PIXEL}, the same URL each call (yarl's cache)",
            checks,
            query_parse([PIXEL] * checks),
        ),
        Path(
            "request.query, signed click URL (for scale)",
            f"the same for the signed link ({len(signed)} chars), the same URL each call",
            checks,
            query_parse([signed] * checks),
        ),
        Path(
            "request.query, a new signed click URL per call (for scale)",
            "signed links differing in their campaign: yarl's URL cache misses, the query is "
            "parsed",
            checks,
            query_parse(distinct_links(checks)),
        ),
    ]


def time_path(path: Path, repetitions: int) -> list[float]:
    """Microseconds per call, one figure per repetition, bounded in count and time."""
    figures: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS_PER_PATH
    for number in range(repetitions):
        if number >= MIN_REPETITIONS and time.monotonic() > deadline:
            break
        figures.append(path.repetition())
    return figures


def measure(quick: bool = False, runs: int = 1, redis_url: str | None = None) -> dict[str, Any]:
    """Every path `runs` times; per path the median of the runs' medians and their range. With
    `redis_url` the paths that need Redis too."""
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    chosen = paths(quick) + (redis_paths(redis_url, quick) if redis_url else [])
    return {
        "runs": runs,
        "repetitions": repetitions,
        "link_params": len(LINK_PARAMS),
        "link_days": LINK_DAYS,
        "paths": rows(chosen, runs, repetitions),
    }


def measure_redis(redis_url: str, quick: bool = False, runs: int = 1) -> list[dict[str, Any]]:
    """The rows of the paths that need Redis alone, in the form of measure()'s."""
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    return rows(redis_paths(redis_url, quick), runs, repetitions)


def rows(chosen: list[Path], runs: int, repetitions: int) -> list[dict[str, Any]]:
    per_run: dict[str, list[float]] = {path.name: [] for path in chosen}
    for _ in range(runs):
        for path in chosen:
            per_run[path.name].append(median(time_path(path, repetitions)))
    return [
        {
            "path": path.name,
            "what": path.what,
            "calls_per_repetition": path.calls,
            "us_per_call": round(median(per_run[path.name]), 3),
            "us_per_call_runs": [round(f, 3) for f in per_run[path.name]],
        }
        for path in chosen
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--runs", type=int, default=1, help="run every path this many times")
    parser.add_argument("--redis-url", help="a redis-server for the Redis client's path")
    args = parser.parse_args()
    result = measure(args.quick, max(1, min(args.runs, 20)), args.redis_url)
    for row in result["paths"]:
        runs = ", ".join(f"{f:.3f}" for f in row["us_per_call_runs"])
        print(f"{row['path']:<50} {row['us_per_call']:9.3f} us   runs: {runs}")


if __name__ == "__main__":
    main()
