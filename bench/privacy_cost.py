"""The privacy step alone, in process: what `ClientFields.fragment` costs per request on each of
its paths; for scale, `EventFactory.build`, aiohttp's `request.query` for the default and the
consent URL, and the client's fields as the tracker made them before the privacy step.

    .venv/bin/python -m bench.privacy_cost [--quick] [--runs N]

A `ClientFields` as the tracker builds it (a real `ConsentDecider` for vendor 755, a USER_ID_KEY)
but with a stand-in for `DailySecrets` whose secret for the day is always at hand, as it is in a
running tracker once its background task has fetched it (no Redis here). Its inputs are what
aiohttp hands the request path: `request.query` is a `MultiDictProxy`, `request.headers` a
`CIMultiDictProxy`, with the headers a browser sends with an image request.

Each path is timed as one loop of `calls` calls over inputs built before the clock starts (the
same objects for a memo hit, distinct ones for a miss), on a `ClientFields` made afresh for each
repetition, so that one repetition's misses are not the next one's hits. A path's figure is the
median over its repetitions of the loop's time divided by its calls: per call, including the
Python call itself (as the handler pays it) and the loop (the no-op row), with the garbage
collector on (as in the tracker). With --runs N the whole set runs N times and each path reports
the median of the N run figures and their range, to show how steady they were.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, cast

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy
from yarl import URL

from tests.support.tcf_strings import ALPHABET, VENDOR_SECTION_AT, tc_string
from tracker.events.anonymize import anonymize_ip
from tracker.events.builder import NO_PARAMS, EventFactory
from tracker.memo import BoundedMemo
from tracker.privacy.client_fields import ClientFields
from tracker.privacy.consent import GRANTED, MEASURE_AD_PERFORMANCE, ConsentDecider
from tracker.privacy.daily_secret import DailySecrets
from tracker.programs.model import Program, parse_program
from tracker.schema.tracking.v1 import tracking_pb2 as pb

VENDOR_ID = 755
# Not a secret: the bench's own USER_ID_KEY (>= 16 bytes), also given to its tracker process.
USER_ID_KEY_TEXT = "bench-user-id-key-0123456789abcdef"
USER_ID = "user-12345"
DAY = 20_788  # 2026-12-01; any day will do, the stand-in has a secret for it
STAMP_MS = DAY * 86_400_000 + 1  # a millisecond of that day
CUSTOMER_ID = 1001  # demo-shoes' customer
ADDRESS = "203.0.113.57"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# With a query, so that the minimisation has something to cut.
REFERER = "https://news.example.com/articles/2026/spring-sale?utm_source=newsletter&sid=8f3a2c"
PROGRAMS = Path(__file__).resolve().parent.parent / "infra" / "local" / "programs.json"

# TC strings: global vendor list ids now reach about 1,400, and a CMP's string commonly names a
# few hundred vendors.
GVL_MAX_ID = 1400
STRING_VENDORS = 500
PURPOSES = tuple(range(1, 11))  # all ten TCF purposes, 7 among them
SEED = 7  # the same strings in every run
MAX_DRAWS = 100  # per distinct string wanted: random sets collide rarely, but the loop is bounded

# Calls per repetition (a quarter with --quick). Decode misses stay under the consent memo's
# 1,024 entries, so that no repetition clears it half way.
HIT_CALLS, MISS_CALLS, DECODE_CALLS, LONGEST_CALLS = 20_000, 2_000, 1_000, 50
# The longest TC string a client can send: aiohttp refuses request lines over 8,190 bytes, so
# ~8,000 characters of single-id range entries (17 bits each), the most entries per character.
LONGEST_ENTRIES = 2_800
REPETITIONS, QUICK_REPETITIONS = 15, 5
MAX_SECONDS_PER_PATH = 10.0  # after at least MIN_REPETITIONS, no more repetitions past this
MIN_REPETITIONS = 3

BEFORE = "before the privacy step, memo hit (for scale)"
BEFORE_MISS = "before the privacy step, memo miss (for scale)"
QUERY_DEFAULT = "request.query, default pixel (for scale)"
QUERY_CONSENT = "request.query, consent + uid (for scale)"

Query = MultiDictProxy[str]
Headers = CIMultiDictProxy[str]
# As the handler calls it: query, headers, user agent (cut), address, customer, day
Fragment = Callable[[Query, Headers, str, str | None, int, int], bytes]


class FixedSecrets:
    """Stands in for DailySecrets, whose request path is `for_day` (a dict's `get`) and, only when
    the day's secret is missing, `fetch_soon`: here the secret of DAY is always at hand."""

    def __init__(self, secret: bytes) -> None:
        self.for_day = {DAY: secret}.get  # the same C call as the real one

    def fetch_soon(self) -> None:
        """Never called: the secret is never missing."""


def client_fields() -> ClientFields:
    """A fresh ClientFields as the tracker builds it, its memos empty."""
    secrets = cast(DailySecrets, FixedSecrets(bytes(range(32))))  # only its request path is used
    return ClientFields(ConsentDecider(VENDOR_ID), secrets, USER_ID_KEY_TEXT.encode())


def query(**params: str) -> Query:
    return MultiDictProxy(MultiDict({"program": "demo-shoes", **params}))


def headers(user_agent: str = USER_AGENT, *extra: tuple[str, str]) -> Headers:
    """What a browser sends for an <img> of another site (Firefox's and Chrome's set, trimmed)."""
    return CIMultiDictProxy(
        CIMultiDict(
            [
                ("Host", "track.example.com"),
                ("User-Agent", user_agent),
                ("Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
                ("Accept-Language", "en-US,en;q=0.9"),
                ("Accept-Encoding", "gzip, deflate, br, zstd"),
                ("Referer", REFERER),
                ("Sec-Fetch-Dest", "image"),
                ("Sec-Fetch-Mode", "no-cors"),
                ("Sec-Fetch-Site", "cross-site"),
                ("Connection", "keep-alive"),
                *extra,
            ]
        )
    )


# --- TC strings ----------------------------------------------------------------------------------


def bit_field_vendors(rng: random.Random) -> set[int]:
    """STRING_VENDORS vendor ids of the list, ours among them, scattered."""
    others = [v for v in range(1, GVL_MAX_ID + 1) if v != VENDOR_ID]
    return {VENDOR_ID, *rng.sample(others, STRING_VENDORS - 1)}


def range_vendors(rng: random.Random) -> set[int]:
    """About STRING_VENDORS vendor ids in ~40 runs, ours among them: a set for which a CMP picks
    the range encoding (about as short as the bit field)."""
    chosen: set[int] = {VENDOR_ID}
    at = rng.randint(1, 20)
    while at <= GVL_MAX_ID and len(chosen) < STRING_VENDORS:
        run = rng.randint(4, 20)
        chosen.update(range(at, min(at + run, GVL_MAX_ID + 1)))
        at += run + rng.randint(5, 40)
    return chosen


def consent_string(rng: random.Random, *, ranges: bool) -> str:
    """A TC string granting purposes 1-10 to ~500 vendors, VENDOR_ID among them."""
    vendors = range_vendors(rng) if ranges else bit_field_vendors(rng)
    return tc_string(purposes=PURPOSES, vendors=vendors, ranges=ranges)


def longest_strings(count: int) -> list[str]:
    """`count` distinct strings of LONGEST_ENTRIES single-id entries (ours among them): the
    most work a decode can be made to do, as every entry is read."""
    return [
        tc_string(
            purposes=PURPOSES,
            ranges=True,
            max_vendor_id=first + LONGEST_ENTRIES,
            range_entries=[(v, v) for v in range(first + 1, first + LONGEST_ENTRIES + 1)],
        )
        for first in range(count)  # first < VENDOR_ID: each string names us
    ]


def granted_string() -> str:
    """The one TC string of the memo-hit paths and of the bench's HTTP consent case."""
    return consent_string(random.Random(SEED), ranges=False)


def distinct_strings(count: int, *, ranges: bool, seed: int) -> list[str]:
    rng = random.Random(seed)
    strings: dict[str, None] = {}  # ordered and distinct
    for _ in range(count * MAX_DRAWS):
        strings[consent_string(rng, ranges=ranges)] = None
        if len(strings) == count:
            return list(strings)
    raise RuntimeError(f"{len(strings)} distinct TC strings of {count} wanted")


def range_entries(tc: str) -> int:
    """How many range entries the vendor consent section of a range-encoded `tc` holds."""
    raw = tc.split(".", 1)[0]
    bits = "".join(format(ALPHABET.index(char), "06b") for char in raw)
    at = VENDOR_SECTION_AT + 17  # past MaxVendorId and IsRangeEncoding: NumEntries
    return int(bits[at : at + 12], 2)


# --- the paths -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str  # one line for the report
    inputs: list[tuple[Query, Headers]]  # one call per item
    warm: tuple[Query, Headers] | None  # one untimed call first, to fill the memos a hit needs
    expect: Callable[[ClientFields, bytes], None]  # checks the last call's result
    addresses: Sequence[str] | None = None  # one per call; None: ADDRESS for every call


def paths(quick: bool) -> list[Scenario]:
    scale = 4 if quick else 1
    hits, misses, decodes = HIT_CALLS // scale, MISS_CALLS // scale, DECODE_CALLS // scale
    longest = longest_strings(max(4, LONGEST_CALLS // scale))
    plain = (query(), headers())
    granted_text = granted_string()
    granted = (query(gdpr="1", gdpr_consent=granted_text, uid=USER_ID), headers())
    gpc = (query(), headers(USER_AGENT, ("Sec-GPC", "1")))
    new_uids = [
        (query(gdpr="1", gdpr_consent=granted_text, uid=f"user-{n}"), headers())
        for n in range(misses)
    ]
    bit_strings = distinct_strings(decodes, ranges=False, seed=SEED + 1)
    range_strings = distinct_strings(decodes, ranges=True, seed=SEED + 2)
    return [
        Scenario(
            "memo hit, no gdpr (the default)",
            "consent not applicable; client fragment from the memo",
            [plain] * hits,
            plain,
            _expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=True, user_key=False),
        ),
        Scenario(
            "memo hit, consent granted + uid",
            "TC string decided from the consent memo; client and user_key fragments from theirs",
            [granted] * hits,
            granted,
            _expect(consent=GRANTED, visitor_id=True, user_key=True),
        ),
        Scenario(
            "memo hit, Sec-GPC: 1",
            "opted out: the withheld fragment (origin-only referer) from its memo",
            [gpc] * hits,
            gpc,
            _expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=False, user_key=False, gpc=True),
        ),
        Scenario(
            "memo miss: new client",
            "a new user agent per call: visitor_id hash, referer minimised, /24, serialized",
            new_clients(misses),
            plain,
            _expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=True, user_key=False),
        ),
        Scenario(
            "memo miss: new address, known browser and page",
            "a new address per call, the user agent and referer seen before: visitor_id hash, "
            "/24 of the address, the page's fields from their memo",
            [plain] * misses,
            plain,
            _expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=True, user_key=False),
            [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(misses)],
        ),
        Scenario(
            "memo miss: new uid, consent granted",
            "a new uid per call: user_key HMAC and its field; the rest from the memos",
            new_uids,
            granted,
            _expect(consent=GRANTED, visitor_id=True, user_key=True),
        ),
        Scenario(
            "consent decode miss: bit field",
            f"a new TC string per call, ~{STRING_VENDORS} vendors as a bit field "
            f"({len(bit_strings[0])} chars); client fragment from the memo",
            [(query(gdpr="1", gdpr_consent=s), headers()) for s in bit_strings],
            (query(gdpr="1", gdpr_consent=granted_text), headers()),
            _expect(consent=GRANTED, visitor_id=True, user_key=False),
        ),
        Scenario(
            "consent decode miss: ranges",
            f"a new TC string per call, ~{STRING_VENDORS} vendors in ~"
            f"{range_entries(range_strings[0])} range entries ({len(range_strings[0])} chars); "
            "client fragment from the memo",
            [(query(gdpr="1", gdpr_consent=s), headers()) for s in range_strings],
            (query(gdpr="1", gdpr_consent=granted_text), headers()),
            _expect(consent=GRANTED, visitor_id=True, user_key=False),
        ),
        Scenario(
            "consent decode miss: longest string",
            f"a new TC string per call, {LONGEST_ENTRIES:,} single-id range entries "
            f"({len(longest[0]):,} chars): the worst a request line can carry",
            [(query(gdpr="1", gdpr_consent=s), headers()) for s in longest],
            (query(gdpr="1", gdpr_consent=granted_text), headers()),
            _expect(consent=GRANTED, visitor_id=True, user_key=False),
        ),
    ]


def _expect(
    *, consent: int, visitor_id: bool, user_key: bool, gpc: bool = False
) -> Callable[[ClientFields, bytes], None]:
    """A check that the path ran what it says: the fragment's fields, and every call's consent."""

    def check(fields: ClientFields, fragment: bytes) -> None:
        event = pb.TrackingEvent.FromString(fragment)
        assert event.consent == consent, (event.consent, consent)
        assert event.gpc == gpc, event
        assert bool(event.visitor_id) == visitor_id, event
        assert bool(event.user_key) == user_key, event
        assert sum(fields.by_consent) == fields.by_consent[consent], fields.by_consent

    return check


# --- timing --------------------------------------------------------------------------------------


def _loop(
    fragment: Fragment,
    inputs: Sequence[tuple[Query, Headers]],
    addresses: Sequence[str] | None = None,
) -> float:
    """Seconds for one call per input: the handler's call, with its arguments."""
    if addresses is None:
        addresses = [ADDRESS] * len(inputs)
    started = time.perf_counter()
    for (query_, headers_), address in zip(inputs, addresses, strict=True):
        fragment(query_, headers_, _agent(headers_), address, CUSTOMER_ID, DAY)
    return time.perf_counter() - started


def _noop(
    query_: Query, headers_: Headers, user_agent: str, address: str | None, customer: int, day: int
) -> bytes:
    return b""


def _agent(headers_: Headers) -> str:
    """The user agent as the handler takes it (before the privacy step, so not timed as its)."""
    return headers_.get("User-Agent", "")[:512]


def time_path(path: Scenario, repetitions: int) -> list[float]:
    """Microseconds per call, one figure per repetition, each on a fresh ClientFields."""
    figures: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS_PER_PATH
    for number in range(repetitions):
        if number >= MIN_REPETITIONS and time.monotonic() > deadline:
            break
        fields = client_fields()
        if path.warm is not None:
            warm_query, warm_headers = path.warm
            fields.fragment(
                warm_query, warm_headers, _agent(warm_headers), ADDRESS, CUSTOMER_ID, DAY
            )
        elapsed = _loop(fields.fragment, path.inputs, path.addresses)
        figures.append(1e6 * elapsed / len(path.inputs))
        last = path.inputs[-1]
        result = fields.fragment(last[0], last[1], _agent(last[1]), ADDRESS, CUSTOMER_ID, DAY)
        path.expect(fields, result)
    return figures


class BeforePrivacy:
    """The client's part of the event as the tracker made it before the privacy step (commit
    c76a57f^, re-created here): the address anonymized through a memo, two headers read and
    cut, the three fields serialized once per client. What the step replaced, so that what it
    adds shows as the difference. Same call signature as ClientFields.fragment."""

    def __init__(self) -> None:
        self._addresses: BoundedMemo[str | None, str] = BoundedMemo(4096)
        self._clients: BoundedMemo[tuple[str, str, str], bytes] = BoundedMemo(2048)

    def fragment(
        self,
        query_: Query,
        headers_: Headers,
        user_agent: str,
        address: str | None,
        customer: int,
        day: int,
    ) -> bytes:
        anonymized = self._anonymized(address)
        referer = headers_.get("Referer", "")[:512]
        return self._client(user_agent, referer, anonymized)

    def _anonymized(self, address: str | None) -> str:
        known = self._addresses.get(address)
        if known is None:
            known = self._addresses.remember(address, anonymize_ip(address))
        return known

    def _client(self, user_agent: str, referer: str, address: str) -> bytes:
        key = (user_agent, referer, address)
        serialized = self._clients.get(key)
        if serialized is None:
            part = pb.TrackingEvent(
                user_agent=user_agent, referer=referer, client_ip_anonymized=address
            )
            serialized = self._clients.remember(key, part.SerializeToString())
        return serialized


def time_before(inputs: Sequence[tuple[Query, Headers]], repetitions: int) -> list[float]:
    """As time_path, for the re-created code before the privacy step (warmed with the plain
    client, so a list of it is all hits and a list of new user agents all misses)."""
    figures = []
    for _ in range(repetitions):
        before = BeforePrivacy()
        before.fragment(query(), headers(), USER_AGENT, ADDRESS, CUSTOMER_ID, DAY)
        figures.append(1e6 * _loop(before.fragment, inputs) / len(inputs))
    return figures


def new_clients(count: int) -> list[tuple[Query, Headers]]:
    """A new client on every call: the user agent alone differs, as between browser versions."""
    plain = query()
    return [(plain, headers(f"{USER_AGENT} bench/{n}")) for n in range(count)]


def time_noop(calls: int, repetitions: int) -> list[float]:
    inputs = [(query(), headers())] * calls
    return [1e6 * _loop(_noop, inputs) / calls for _ in range(repetitions)]


def time_build(calls: int, repetitions: int) -> list[float]:
    """EventFactory.build for a cached program and a memoized client fragment, the same
    millisecond throughout (its timestamp field memoized too): the rest of an event's making."""
    program = _demo_program()
    fragment = client_fields().fragment(query(), headers(), USER_AGENT, ADDRESS, CUSTOMER_ID, DAY)
    clients = [fragment] * calls
    figures = []
    for _ in range(repetitions):
        factory = EventFactory("bench-instance")
        build, outcome = factory.build, factory.outcomes[pb.IMPRESSION, pb.OK, pb.IVT_NONE]
        build(outcome, "demo-shoes", program, STAMP_MS, fragment, None, NO_PARAMS)
        started = time.perf_counter()
        for client in clients:
            build(
                outcome,
                "demo-shoes",
                program,
                STAMP_MS,
                client,
                None,
                NO_PARAMS,
            )
        figures.append(1e6 * (time.perf_counter() - started) / calls)
    return figures


def time_query(query_string: str, calls: int, repetitions: int) -> list[float]:
    """`request.query` as aiohttp makes it: a yarl URL built from the request target (its C
    parser calls URL.build with the encoded path and query), then the query parsed. What a
    request's privacy parameters cost before the privacy step sees them."""
    figures = []
    strings = [query_string] * calls
    for _ in range(repetitions):
        started = time.perf_counter()
        for text in strings:
            URL.build(path="/v1/pixel", query_string=text, encoded=True).query  # noqa: B018
        figures.append(1e6 * (time.perf_counter() - started) / calls)
    return figures


def _demo_program() -> Program:
    programs = json.loads(PROGRAMS.read_text())
    return next(p for p in map(parse_program, programs) if p.program_id == "demo-shoes")


# --- one or more runs ----------------------------------------------------------------------------


def measure(quick: bool = False, runs: int = 1) -> dict[str, Any]:
    """Every path `runs` times; per path the median of the runs' medians and their range."""
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    chosen = paths(quick)
    calls = HIT_CALLS // (4 if quick else 1)
    granted = granted_string()
    consent_query = f"program=demo-shoes&gdpr=1&gdpr_consent={granted}&uid={USER_ID}"
    before_hits = [(query(), headers())] * calls
    before_misses = new_clients(MISS_CALLS // (4 if quick else 1))
    per_run: dict[str, list[float]] = {}
    for _ in range(runs):
        per_run.setdefault("no-op call (the loop and the call)", []).append(
            median(time_noop(calls, repetitions))
        )
        per_run.setdefault(BEFORE, []).append(median(time_before(before_hits, repetitions)))
        per_run.setdefault(BEFORE_MISS, []).append(median(time_before(before_misses, repetitions)))
        for path in chosen:
            per_run.setdefault(path.name, []).append(median(time_path(path, repetitions)))
        per_run.setdefault("EventFactory.build, hit (for scale)", []).append(
            median(time_build(calls, repetitions))
        )
        per_run.setdefault(QUERY_DEFAULT, []).append(
            median(time_query("program=demo-shoes", calls, repetitions))
        )
        per_run.setdefault(QUERY_CONSENT, []).append(
            median(time_query(consent_query, calls, repetitions))
        )
    what = {path.name: path.what for path in chosen}
    what["no-op call (the loop and the call)"] = "a function returning b'' with the same arguments"
    what["EventFactory.build, hit (for scale)"] = (
        "the rest of the event: program prefix, outcome, message id, timestamp, all memoized"
    )
    what[BEFORE] = "the client's fields as made before the privacy step (re-created), no gdpr"
    what[BEFORE_MISS] = "the same, a new user agent per call: the three fields serialized"
    what[QUERY_DEFAULT] = "aiohttp's URL and request.query for ?program=demo-shoes"
    what[QUERY_CONSENT] = (
        f"the same with gdpr=1, gdpr_consent ({len(granted)} chars), uid: the consent case's URL"
    )
    sizes = {path.name: len(path.inputs) for path in chosen}
    sizes[BEFORE_MISS] = len(before_misses)
    return {
        "vendor_id": VENDOR_ID,
        "purpose": MEASURE_AD_PERFORMANCE,
        "runs": runs,
        "repetitions": repetitions,
        "paths": [
            {
                "path": name,
                "what": what[name],
                "calls_per_repetition": sizes.get(name, calls),
                "us_per_call": round(median(figures), 3),
                "us_per_call_runs": [round(f, 3) for f in figures],
            }
            for name, figures in per_run.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--runs", type=int, default=1, help="run every path this many times")
    args = parser.parse_args()
    result = measure(args.quick, max(1, min(args.runs, 20)))
    for row in result["paths"]:
        runs = ", ".join(f"{f:.3f}" for f in row["us_per_call_runs"])
        print(f"{row['path']:<48} {row['us_per_call']:8.3f} us   runs: {runs}")


if __name__ == "__main__":
    main()
