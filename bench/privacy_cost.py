"""The privacy step alone, in process: what `ClientFields.fragment` costs per request on each of
its paths; for scale, `EventFactory.build`, aiohttp's `request.query` for the default and the
consent URL, and the client's fields as the tracker made them before the privacy step.

    .venv/bin/python -m bench.privacy_cost [--quick] [--runs N]

A `ClientFields` as the tracker builds it (a real `ConsentDecider` for vendor 755, a USER_ID_KEY)
but with a stand-in for `DailySecrets` whose secret for the day is always at hand, as it is in a
running tracker once its background task has fetched it (no Redis here). Its input is the
`RequestFacts` the handler hands it, filled in as far as the privacy step: `request.query` (a
`MultiDictProxy`), `request.headers` (a `CIMultiDictProxy` with the headers a browser sends with
an image request), the user agent cut, the address, the demo program and the day.

Each path is timed as one loop of `calls` calls over inputs built before the clock starts (the
same record for a memo hit, distinct ones for a miss), on a `ClientFields` made afresh for each
repetition, so that one repetition's misses are not the next one's hits; bench/micro.py says how
the figures are made from the loops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench import micro
from bench.before_privacy import BeforePrivacy
from bench.browser import ADDRESS, USER_AGENT, Headers, headers
from bench.consent_strings import (
    MOST_ENTRIES,
    SEED,
    STRING_VENDORS,
    distinct_strings,
    granted_string,
    most_entries_strings,
    range_entries,
)
from bench.demo_programs import DEMO_PIXEL, DEMO_PROGRAM_ID, demo_program
from bench.micro import Path, loop_seconds, per_call, scaled
from bench.privacy_inputs import (
    DAY,
    STAMP_MS,
    USER_ID,
    USER_ID_KEY_TEXT,
    VENDOR_ID,
    fixed_secrets,
)
from bench.request_query import query_parse
from tests.support.facts import request_facts
from tracker.events.builder import EventFactory
from tracker.privacy.client_fields import ClientFields
from tracker.privacy.consent import GRANTED, MEASURE_AD_PERFORMANCE, ConsentDecider
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb

# Calls per repetition (a quarter with --quick). Decode misses stay under the consent memo's
# 1,024 entries, so that no repetition clears it half way.
HIT_CALLS, MISS_CALLS, DECODE_CALLS = 20_000, 2_000, 1_000

NOOP = "no-op call (the loop and the call)"
BEFORE = "before the privacy step, memo hit (for scale)"
BEFORE_MISS = "before the privacy step, memo miss (for scale)"
BUILD = "EventFactory.build, hit (for scale)"
QUERY_DEFAULT = "request.query, default pixel (for scale)"
QUERY_CONSENT = "request.query, consent + uid (for scale)"

Expect = Callable[[ClientFields, bytes], None]  # checks a repetition's fields and last fragment


def client_fields() -> ClientFields:
    """A fresh ClientFields as the tracker builds it, its memos empty."""
    return ClientFields(ConsentDecider(VENDOR_ID), fixed_secrets(), USER_ID_KEY_TEXT.encode())


def request(
    params: Mapping[str, str] | None = None,
    request_headers: Headers | None = None,
    address: str = ADDRESS,
) -> RequestFacts:
    """A pixel request's facts as the handler has them when it calls the privacy step: the demo
    program's, the query with `params`, a browser's headers (`request_headers`) from `address`."""
    return request_facts(
        program_id=DEMO_PROGRAM_ID,
        program=demo_program(),
        timestamp_ms=STAMP_MS,
        query=params,
        headers=request_headers if request_headers is not None else headers(),
        address=address,
        day=DAY,
    )


def gdpr_params(tc_string: str, **params: str) -> dict[str, str]:
    """The query parameters of a request under the GDPR with that TC string."""
    return {"gdpr": "1", "gdpr_consent": tc_string, **params}


def new_clients(count: int) -> list[RequestFacts]:
    """A new client on every call: the user agent alone differs, as between browser versions."""
    return [request(request_headers=headers(f"{USER_AGENT} bench/{n}")) for n in range(count)]


def new_addresses(count: int) -> list[RequestFacts]:
    """A new address on every call, the browser and page the same."""
    return [request(address=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}") for n in range(count)]


# --- the privacy step's paths --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    what: str  # one line for the report
    inputs: list[RequestFacts]  # one call per item
    warm: RequestFacts  # one untimed call first, to fill the memos a hit needs
    expect: Expect  # checks the last call's result


def expect(*, consent: int, visitor_id: bool, user_key: bool, gpc: bool = False) -> Expect:
    """A check that the path ran what it says: the fragment's fields, and every call's consent."""

    def check(fields: ClientFields, fragment: bytes) -> None:
        event = pb.TrackingEvent.FromString(fragment)
        assert event.consent == consent, (event.consent, consent)
        assert event.gpc == gpc, event
        assert bool(event.visitor_id) == visitor_id, event
        assert bool(event.user_key) == user_key, event
        assert sum(fields.by_consent) == fields.by_consent[consent], fields.by_consent

    return check


NOT_APPLICABLE = expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=True, user_key=False)
GRANTED_NO_UID = expect(consent=GRANTED, visitor_id=True, user_key=False)
GRANTED_UID = expect(consent=GRANTED, visitor_id=True, user_key=True)
OPTED_OUT = expect(consent=pb.CONSENT_NOT_APPLICABLE, visitor_id=False, user_key=False, gpc=True)


def scenario_path(scenario: Scenario) -> Path:
    """A repetition: a fresh ClientFields, warmed, then one call per input; the last checked."""
    inputs = scenario.inputs

    def repetition() -> float:
        fields = client_fields()
        fields.fragment(scenario.warm)
        elapsed = loop_seconds(fields.fragment, inputs)
        scenario.expect(fields, fields.fragment(inputs[-1]))
        return per_call(elapsed, len(inputs))

    return Path(scenario.name, scenario.what, len(inputs), repetition)


def memo_hits(calls: int, granted_text: str) -> list[Scenario]:
    """The same client on every call, its fragment (or its decision) in the memos."""
    plain = request()
    granted = request(gdpr_params(granted_text, uid=USER_ID))
    gpc = request(request_headers=headers(USER_AGENT, ("Sec-GPC", "1")))
    return [
        Scenario(
            "memo hit, no gdpr (the default)",
            "consent not applicable; client fragment from the memo",
            [plain] * calls,
            plain,
            NOT_APPLICABLE,
        ),
        Scenario(
            "memo hit, consent granted + uid",
            "TC string decided from the consent memo; client and user_key fragments from theirs",
            [granted] * calls,
            granted,
            GRANTED_UID,
        ),
        Scenario(
            "memo hit, Sec-GPC: 1",
            "opted out: the withheld fragment (origin-only referer) from its memo",
            [gpc] * calls,
            gpc,
            OPTED_OUT,
        ),
    ]


def memo_misses(calls: int, granted_text: str) -> list[Scenario]:
    """Something of the client new on every call: its fragment is made, in part from memos."""
    plain = request()
    new_uids = [request(gdpr_params(granted_text, uid=f"user-{n}")) for n in range(calls)]
    return [
        Scenario(
            "memo miss: new client",
            "a new user agent per call: visitor_id hash, referer minimised, /24, serialized",
            new_clients(calls),
            plain,
            NOT_APPLICABLE,
        ),
        Scenario(
            "memo miss: new address, known browser and page",
            "a new address per call, the user agent and referer seen before: visitor_id hash, "
            "/24 of the address, the page's fields from their memo",
            new_addresses(calls),
            plain,
            NOT_APPLICABLE,
        ),
        Scenario(
            "memo miss: new uid, consent granted",
            "a new uid per call: user_key HMAC and its field; the rest from the memos",
            new_uids,
            request(gdpr_params(granted_text, uid=USER_ID)),
            GRANTED_UID,
        ),
    ]


def decode_misses(calls: int, granted_text: str) -> list[Scenario]:
    """A new TC string on every call, decoded; the client's fragment from its memo."""
    bit_strings = distinct_strings(calls, ranges=False, seed=SEED + 1)
    range_strings = distinct_strings(calls, ranges=True, seed=SEED + 2)
    most_entries = most_entries_strings(calls)
    warm = request(gdpr_params(granted_text))

    def decode_miss(name: str, what: str, strings: list[str]) -> Scenario:
        inputs = [request(gdpr_params(tc_string)) for tc_string in strings]
        return Scenario(name, what, inputs, warm, GRANTED_NO_UID)

    return [
        decode_miss(
            "consent decode miss: bit field",
            f"a new TC string per call, ~{STRING_VENDORS} vendors as a bit field "
            f"({len(bit_strings[0])} chars); client fragment from the memo",
            bit_strings,
        ),
        decode_miss(
            "consent decode miss: ranges",
            f"a new TC string per call, ~{STRING_VENDORS} vendors in ~"
            f"{range_entries(range_strings[0])} range entries ({len(range_strings[0])} chars); "
            "client fragment from the memo",
            range_strings,
        ),
        decode_miss(
            f"consent decode miss: the most range entries still read ({MOST_ENTRIES})",
            f"a new TC string per call, {MOST_ENTRIES} single-id range entries "
            f"({len(most_entries[0]):,} chars), no longer than the bit field: every entry walked, "
            "the most the parser reads (it refuses more before walking them)",
            most_entries,
        ),
    ]


# --- for scale -----------------------------------------------------------------------------------


def _noop(facts: RequestFacts) -> bytes:
    return b""


def noop_path(calls: int) -> Path:
    inputs = [request()] * calls
    return Path(
        NOOP,
        "a function returning b'' with the same argument",
        calls,
        lambda: per_call(loop_seconds(_noop, inputs), calls),
    )


def before_path(name: str, what: str, inputs: list[RequestFacts]) -> Path:
    """The re-created code before the privacy step, warmed with the plain client (so a list of
    it is all hits, and a list of new user agents all misses)."""
    warm = request()

    def repetition() -> float:
        before = BeforePrivacy()
        before.fragment(warm)
        return per_call(loop_seconds(before.fragment, inputs), len(inputs))

    return Path(name, what, len(inputs), repetition)


def build_path(calls: int) -> Path:
    """EventFactory.build for a cached program and a memoized client fragment, the same
    millisecond throughout (its timestamp field memoized too): the rest of an event's making."""
    facts = request()
    facts.client = client_fields().fragment(facts)
    inputs = [facts] * calls

    def repetition() -> float:
        factory = EventFactory("bench-instance")
        build, outcome = factory.build, factory.outcomes[pb.IMPRESSION, pb.OK, pb.IVT_NONE]
        build(outcome, facts)
        started = time.perf_counter()
        for item in inputs:
            build(outcome, item)
        return per_call(time.perf_counter() - started, calls)

    what = "the rest of the event: program prefix, outcome, message id, timestamp, all memoized"
    return Path(BUILD, what, calls, repetition)


def query_paths(calls: int, granted_text: str) -> list[Path]:
    with_consent = f"{DEMO_PIXEL}&gdpr=1&gdpr_consent={granted_text}&uid={USER_ID}"
    return [
        Path(
            QUERY_DEFAULT,
            f"aiohttp's URL and request.query for ?program={DEMO_PROGRAM_ID}",
            calls,
            query_parse([DEMO_PIXEL] * calls),
        ),
        Path(
            QUERY_CONSENT,
            f"the same with gdpr=1, gdpr_consent ({len(granted_text)} chars), uid: the consent "
            "case's URL",
            calls,
            query_parse([with_consent] * calls),
        ),
    ]


# --- the set -------------------------------------------------------------------------------------


def paths(quick: bool) -> list[Path]:
    """Every row of the report, in its order."""
    hits, misses = scaled(HIT_CALLS, quick), scaled(MISS_CALLS, quick)
    decodes = scaled(DECODE_CALLS, quick)
    granted_text = granted_string()
    scenarios = [
        *memo_hits(hits, granted_text),
        *memo_misses(misses, granted_text),
        *decode_misses(decodes, granted_text),
    ]
    before_what = "the client's fields as made before the privacy step (re-created), no gdpr"
    return [
        noop_path(hits),
        before_path(BEFORE, before_what, [request()] * hits),
        before_path(
            BEFORE_MISS,
            "the same, a new user agent per call: the three fields serialized",
            new_clients(misses),
        ),
        *map(scenario_path, scenarios),
        build_path(hits),
        *query_paths(hits, granted_text),
    ]


def measure(quick: bool = False, runs: int = 1) -> dict[str, Any]:
    """Every path `runs` times; per path the median of the runs' medians and their range."""
    repetitions = micro.repetition_count(quick)
    return {
        "vendor_id": VENDOR_ID,
        "purpose": MEASURE_AD_PERFORMANCE,
        "runs": runs,
        "repetitions": repetitions,
        "paths": micro.rows(paths(quick), runs, repetitions),
    }


def main() -> None:
    args = micro.arguments(__doc__).parse_args()
    micro.print_rows(measure(args.quick, micro.run_count(args))["paths"])


if __name__ == "__main__":
    main()
