"""HTTP handlers for the tracking routes: parse and bound, validate, answer, hand the event over.

The request path never awaits I/O when the program is in L1; on a miss it awaits one Redis lookup
that is capped at REDIS_TIMEOUT_MS and shared with every concurrent miss for the same id.
"""

from __future__ import annotations

import json
from time import perf_counter

from aiohttp import web
from multidict import MultiMapping

from tracker.answers import FixedAnswer
from tracker.click_ids import (
    CLICK_ID_CHARS,
    WINDOW_FIELDS,
    ClickIdRedirects,
    original_click_field,
)
from tracker.conversions import ConversionFields
from tracker.core import TrackerCore
from tracker.events.builder import is_billable, new_message_id
from tracker.headertext import valid_text
from tracker.hotstats import LOOKUP_HIT, LOOKUP_MISS, LOOKUP_NEGATIVE_HIT, MALFORMED, RouteStats
from tracker.integrity.crawlers import MAX_MATCHED
from tracker.integrity.prefetch import is_prefetch
from tracker.memo import BoundedMemo
from tracker.privacy.client_fields import MAX_ADDRESS, MAX_USER_AGENT
from tracker.privacy.daily_secret import DAY_SECONDS
from tracker.programs.model import Program, is_program_id
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.validation.cache import Absent
from tracker.validation.validator import classify

# The classic transparent 1x1 GIF89a.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = "no-cache, no-store, must-revalidate"
PIXEL_ANSWER = FixedAnswer(200, {"Content-Type": "image/gif", "Cache-Control": NO_CACHE}, PIXEL_GIF)
# One per landing URL (and one per program with click_id_param), at most ~5 KB each.
MAX_REDIRECT_ANSWERS = 2_000
CLICK: int = pb.CLICK
# The costly reads of one request share a budget. Each is bounded on its own (a TC string's
# range walk at 128 entries, ~30 us; a new user agent matched against the crawler lists on its
# first MAX_MATCHED characters, ~30 us), but together with the longest URL and head they came to
# about five typical pixels. A request whose TC string took a walk of more than LONG_TC_WALK
# entries (CMPs write a handful; a range section that long is near the bit field's length for
# today's vendor list) has a new user agent matched on its first MATCHED_AFTER_LONG_WALK
# characters only: the crawlers that name themselves latest (Googlebot's and AdsBot's
# smartphone agents, by character ~165) still do within them, and such an answer is not
# remembered for the user agent (tracker.integrity.crawlers).
LONG_TC_WALK = 64
MATCHED_AFTER_LONG_WALK = 192
CONVERSION: int = pb.CONVERSION


class TrackingHandlers:
    """The tracking routes. The pixel is the hot path: a cache hit never awaits, and each step
    below was kept or rewritten by its measured cost (docs/benchmarks.md)."""

    def __init__(self, core: TrackerCore) -> None:
        self._cache = core.cache
        self._resolver = core.resolver
        self._events = core.events
        self._buffer = core.buffer
        # Write-ahead: the answer waits for the group write that holds its event.
        self._write_ahead_log = core.log if core.settings.shipping.write_ahead else None
        self._lookups = core.metrics.hot.lookups
        self._stats = core.metrics.hot.routes
        self._pixel_stats = self._stats["pixel"]
        self._fallback = core.settings.click_fallback_url
        self._trust_forwarded = core.settings.trust_forwarded_for
        self._redirects: BoundedMemo[str, FixedAnswer] = BoundedMemo(MAX_REDIRECT_ANSWERS)
        self._click_ids = ClickIdRedirects(MAX_REDIRECT_ANSWERS, {"Cache-Control": NO_CACHE})
        self._conversion_stats = self._stats["conversion"]
        self._conversions = ConversionFields()
        core.metrics.track_counters(
            "tracker_conversion_params_dropped",
            "Conversion parameters left out of their event because they were malformed",
            ("param",),
            self._conversions.counts,
        )
        self._client_fields = core.client_fields.fragment
        self._clock = core.clock
        self._outcomes = core.events.outcomes
        self._crawlers = core.integrity.crawlers
        self._known_crawler = core.integrity.crawlers.known.get
        self._links = core.integrity.links
        self._duplicates = core.integrity.duplicates
        if self._duplicates is not None:
            self._duplicates.on_checked = self._record_checked_click
            self._duplicates.click_id_of = _click_id_of
        self._by_ivt = core.integrity.events_by_ivt

    async def pixel(self, request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        stats = self._pixel_stats
        query = request.query
        program_id = query.get("program")
        if program_id is None:
            stats.outcomes[MALFORMED] += 1
        else:
            facts = RequestFacts(query, request.headers, pb.IMPRESSION, program_id)
            await self._track(request, facts, stats)
        stats.observe(perf_counter() - started)
        return PIXEL_ANSWER.respond(request)

    async def click(self, request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        stats = self._stats["click"]
        query = request.query
        program_id = query.get("program")
        facts = None
        if program_id is None:
            stats.outcomes[MALFORMED] += 1
        else:
            facts = RequestFacts(query, request.headers, pb.CLICK, program_id)
            facts = await self._track(request, facts, stats)
        if facts is None:
            return _json_error(400, "query parameter 'program' is missing or malformed")
        stats.observe(perf_counter() - started)
        destination = self._fallback
        program = facts.program
        if facts.validation == pb.OK and program is not None and program.landing_url:
            destination = program.landing_url
            param = program.click_id_param
            if param is not None and facts.fields:  # given a click id (see _issue_click_id)
                answer = self._click_ids.answer(program, destination, param)
                return answer.respond(request, facts.message_id)
        if destination is None:
            return _json_error(404, "no destination for this program")
        return self._redirect(destination).respond(request)

    async def conversion(self, request: web.Request) -> web.StreamResponse:
        """The pixel's answer, always; a CONVERSION event when the program id is well formed
        (its own fields: see _record and tracker.conversions)."""
        started = perf_counter()
        stats = self._conversion_stats
        query = request.query
        program_id = query.get("program")
        if program_id is None:
            stats.outcomes[MALFORMED] += 1
        else:
            facts = RequestFacts(query, request.headers, CONVERSION, program_id)
            await self._track(request, facts, stats)
        stats.observe(perf_counter() - started)
        return PIXEL_ANSWER.respond(request)

    def _redirect(self, destination: str) -> FixedAnswer:
        answer = self._redirects.get(destination)
        if answer is None:
            answer = self._redirects.remember(
                destination, FixedAnswer(302, {"Location": destination, "Cache-Control": NO_CACHE})
            )
        return answer

    async def event(self, request: web.Request) -> web.Response:
        started = perf_counter()
        stats = self._stats["event"]
        program_id = request.match_info["program_id"]
        facts = RequestFacts(request.query, request.headers, pb.EVENT, program_id)
        tracked = await self._track(request, facts, stats)
        if tracked is None:
            return _json_error(400, "program id is malformed")
        stats.observe(perf_counter() - started)
        if tracked.validation == pb.UNKNOWN_PROGRAM:
            return _json_error(
                404, "unknown program", programId=program_id, messageId=tracked.message_id
            )
        return web.json_response(_event_body(tracked), headers={"Cache-Control": NO_CACHE})

    async def _track(
        self, request: web.Request, facts: RequestFacts, stats: RouteStats
    ) -> RequestFacts | None:
        """Validate against L1 (Redis on a miss) and hand the event to the shipper; None, and
        counted as malformed, when the program id is not well formed."""
        program_id = facts.program_id
        found: Program | Absent | None = self._cache.get(program_id)
        if found is None:
            # Only well-formed ids are ever cached, so the format is checked on a miss alone.
            if not is_program_id(program_id):
                stats.outcomes[MALFORMED] += 1
                return None
            self._lookups[LOOKUP_MISS] += 1
            found = await self._resolver.resolve(program_id)
        elif found.__class__ is Absent:
            self._lookups[LOOKUP_NEGATIVE_HIT] += 1
        else:
            self._lookups[LOOKUP_HIT] += 1
        facts.now = now = self._clock()
        customer_text = facts.query.get("customer")
        facts.customer = customer = _customer_id(customer_text)
        validation = classify(found, customer if customer_text is not None else None, now)
        facts.validation = validation
        stats.outcomes[validation] += 1
        facts.program = found if found.__class__ is Program else None
        await self._record(request, facts)
        return facts

    async def _record(self, request: web.Request, facts: RequestFacts) -> None:
        """Classify the traffic, minimise the client's fields, and hand the event over (a click
        that may be a duplicate: once the check answers, without holding up its redirect)."""
        headers = facts.headers
        user_agent = headers.get("User-Agent", "")[:MAX_USER_AGENT]
        if not user_agent.isascii():  # inline: a call per request costs more than this test
            user_agent = valid_text(user_agent)
        facts.user_agent = user_agent
        facts.address = address = self._client_ip(request, headers)
        now = facts.now
        facts.timestamp_ms = int(now * 1000)
        facts.day = day = int(now // DAY_SECONDS)
        # Privacy first: how much of a TC string it read is part of the request's budget.
        facts.client = self._client_fields(facts)
        ivt = self._invalid_traffic(request, facts)
        event_type = facts.event_type
        # The event type's own fields, once privacy has decided (facts.withheld).
        if event_type == CLICK:
            program = facts.program
            if program is not None and program.click_id_param is not None:
                self._issue_click_id(facts, program)
        elif event_type == CONVERSION:
            facts.fields = self._conversions.serialize(facts.query, facts.withheld)
        if ivt == pb.IVT_NONE and event_type == CLICK and self._duplicates is not None:
            if self._write_ahead_log is None:
                self._duplicates.submit(facts, facts.program_id, address or "", user_agent, day)
                return
            # Write-ahead: the answer waits for its event on disk, so for the check too.
            client = (facts.program_id, address or "", user_agent, day)
            found = await self._duplicates.seen_before(facts, client)
            self._record_checked_click(facts, found)
        else:
            # _outcome, inline on the hot path
            validation = facts.validation
            self._by_ivt[ivt][validation == pb.OK and ivt == pb.IVT_NONE] += 1
            self._ship(self._outcomes[event_type, validation, ivt], facts)
        if self._write_ahead_log is not None:
            await self._write_ahead_log.committed()

    @staticmethod
    def _issue_click_id(facts: RequestFacts, program: Program) -> None:
        """A click id for a click that goes to its program's landing URL, unless privacy
        withholds identifiers. Drawn here, before the duplicate check (which builds the event
        once Redis answers), so that the redirect and the event carry the same id."""
        if facts.validation == pb.OK and program.landing_url and not facts.withheld:
            facts.message_id = new_message_id()
            facts.fields = WINDOW_FIELDS[program.effective_window_days]

    def _invalid_traffic(self, request: web.Request, facts: RequestFacts) -> int:
        """The one reason this event is not worth billing, or IVT_NONE (duplicate clicks are
        checked after, in Redis). A click's signature comes first: it is what a made-up click
        fails, and once it has, the user-agent check (~30 us for a new hostile one) would only
        name a second reason."""
        if facts.event_type == CLICK and self._links is not None:
            link = self._links.check(request.path, facts.query, facts.now)
            if link != pb.IVT_NONE:
                return link
        user_agent = facts.user_agent
        crawler = self._known_crawler(user_agent)  # the memo's own lookup: no call on a hit
        if crawler is None:
            long_read = facts.tc_entries_read > LONG_TC_WALK
            matched = MATCHED_AFTER_LONG_WALK if long_read else MAX_MATCHED
            crawler = self._crawlers.is_crawler(user_agent, matched)
        if crawler:
            return pb.IVT_KNOWN_CRAWLER
        if is_prefetch(facts.headers):
            return pb.IVT_PREFETCH
        return pb.IVT_NONE

    def _record_checked_click(self, facts: RequestFacts, found: bytes | None) -> None:
        """`found`: None for a first click; else what its first click stored, that click's id
        when it was given one (a duplicate given an id names it: tracker.click_ids)."""
        ivt = pb.IVT_NONE if found is None else pb.IVT_DUPLICATE_CLICK
        if found is not None and facts.fields and len(found) == CLICK_ID_CHARS:
            facts.fields += original_click_field(found)
        self._ship(self._outcome(pb.CLICK, facts.validation, ivt), facts)

    def _outcome(self, event_type: int, validation: int, ivt: int) -> bytes:
        self._by_ivt[ivt][is_billable(validation, ivt)] += 1
        return self._outcomes[event_type, validation, ivt]

    def _ship(self, outcome: bytes, facts: RequestFacts) -> None:
        message_id, data = self._events.build(outcome, facts)
        facts.message_id = message_id
        self._buffer.offer(message_id, data)  # or to the disk log, see EventBuffer

    def _client_ip(self, request: web.Request, headers: MultiMapping[str]) -> str | None:
        if self._trust_forwarded:
            forwarded = headers.get("X-Forwarded-For")
            if forwarded:
                # The load balancer appends the address it saw; earlier entries are the client's
                # own claims and can be forged. An address is ASCII and short: anything else is
                # not one (and would be hashed whole by the duplicate-click check).
                address = forwarded.rsplit(",", 1)[-1].strip()
                return address if address.isascii() and len(address) <= MAX_ADDRESS else None
        return request.remote


def _click_id_of(facts: RequestFacts) -> str:
    """The id a click was given before its duplicate check, "" when none (tracker.click_ids)."""
    return facts.message_id


def _customer_id(text: str | None) -> int:
    """The customer parameter as an int; -1 when it is not a plain non-negative integer."""
    if text is None:
        return 0
    if text.isascii() and text.isdigit() and len(text) <= 10:
        return int(text)
    return -1


def _event_body(facts: RequestFacts) -> dict[str, object]:
    program = facts.program
    return {
        "messageId": facts.message_id,
        "programId": facts.program_id,
        "programName": program.program_name if program else None,
        "customerId": program.customer_id if program else None,
        "customerName": program.customer_name if program else None,
        "checksum": program.checksum if program else None,
        "userAgent": facts.user_agent,
        "valid": facts.validation == pb.OK,
        "validation": pb.Validation.Name(facts.validation),
    }


def _json_error(status: int, message: str, **fields: str) -> web.Response:
    body = json.dumps({"error": message, **fields})
    return web.Response(
        status=status,
        text=body,
        content_type="application/json",
        headers={"Cache-Control": NO_CACHE},
    )
