"""HTTP handlers for the tracking routes: parse and bound, validate, answer, hand the event over.

The request path never awaits I/O when the program is in L1; on a miss it awaits one Redis lookup
that is capped at REDIS_TIMEOUT_MS and shared with every concurrent miss for the same id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from time import perf_counter
from typing import NamedTuple

from aiohttp import web
from multidict import CIMultiDictProxy, MultiMapping

from tracker.answers import FixedAnswer
from tracker.core import TrackerCore
from tracker.events.builder import NO_PARAMS, RESERVED_PARAMS, extra_params, is_billable
from tracker.headertext import valid_text
from tracker.hotstats import LOOKUP_HIT, LOOKUP_MISS, LOOKUP_NEGATIVE_HIT, MALFORMED, RouteStats
from tracker.integrity.prefetch import is_prefetch
from tracker.memo import BoundedMemo
from tracker.privacy.client_fields import MAX_USER_AGENT
from tracker.privacy.daily_secret import DAY_SECONDS
from tracker.programs.model import Program, is_program_id
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
# One per landing URL, at most ~5 KB each.
MAX_REDIRECT_ANSWERS = 2_000


class Tracked(NamedTuple):
    validation: int
    program: Program | None
    message_id: str  # "" for a click whose event is recorded after its answer


class PendingClick(NamedTuple):
    """A click whose event waits for the duplicate check (its answer does not)."""

    validation: int
    program_id: str
    program: Program | None
    now: float
    client: bytes
    customer: int
    query: MultiMapping[str]


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
        self._client_fields = core.client_fields.fragment
        self._clock = core.clock
        self._outcomes = core.events.outcomes
        self._crawlers = core.integrity.crawlers
        self._known_crawler = core.integrity.crawlers.known.get
        self._links = core.integrity.links
        self._duplicates = core.integrity.duplicates
        if self._duplicates is not None:
            self._duplicates.on_checked = self._record_checked_click
        self._by_ivt = core.integrity.events_by_ivt

    async def pixel(self, request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        stats = self._pixel_stats
        query = request.query
        program_id = query.get("program")
        if program_id is None:
            stats.outcomes[MALFORMED] += 1
        else:
            await self._track(request, query, stats, pb.IMPRESSION, program_id)
        stats.observe(perf_counter() - started)
        return PIXEL_ANSWER.respond(request)

    async def click(self, request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        stats = self._stats["click"]
        query = request.query
        program_id = query.get("program")
        if program_id is None:
            stats.outcomes[MALFORMED] += 1
            tracked = None
        else:
            tracked = await self._track(request, query, stats, pb.CLICK, program_id)
        if tracked is None:
            return _json_error(400, "query parameter 'program' is missing or malformed")
        stats.observe(perf_counter() - started)
        destination = self._fallback
        if tracked.validation == pb.OK and tracked.program and tracked.program.landing_url:
            destination = tracked.program.landing_url
        if destination is None:
            return _json_error(404, "no destination for this program")
        return self._redirect(destination).respond(request)

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
        tracked = await self._track(request, request.query, stats, pb.EVENT, program_id)
        if tracked is None:
            return _json_error(400, "program id is malformed")
        stats.observe(perf_counter() - started)
        if tracked.validation == pb.UNKNOWN_PROGRAM:
            return _json_error(
                404, "unknown program", programId=program_id, messageId=tracked.message_id
            )
        return web.json_response(
            _event_body(request, program_id, tracked), headers={"Cache-Control": NO_CACHE}
        )

    async def _track(
        self,
        request: web.Request,
        query: MultiMapping[str],
        stats: RouteStats,
        event_type: int,
        program_id: str,
    ) -> Tracked | None:
        """Validate against L1 (Redis on a miss) and hand the event to the shipper; None, and
        counted as malformed, when the program id is not well formed."""
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
        now = self._clock()
        customer_text = query.get("customer")
        customer = _customer_id(customer_text)
        validation = classify(found, customer if customer_text is not None else None, now)
        stats.outcomes[validation] += 1
        program = found if found.__class__ is Program else None
        return await self._record(
            request, query, event_type, validation, program_id, program, now, customer
        )

    async def _record(
        self,
        request: web.Request,
        query: MultiMapping[str],
        event_type: int,
        validation: int,
        program_id: str,
        program: Program | None,
        now: float,
        customer: int,
    ) -> Tracked:
        """Classify the traffic, minimise the client's fields, and hand the event over (a click
        that may be a duplicate: once the check answers, without holding up its redirect)."""
        headers = request.headers
        user_agent = headers.get("User-Agent", "")[:MAX_USER_AGENT]
        if not user_agent.isascii():  # inline: a call per request costs more than this test
            user_agent = valid_text(user_agent)
        address = self._client_ip(request, headers)
        ivt = self._invalid_traffic(request, headers, query, event_type, user_agent, now)
        day = int(now // DAY_SECONDS)
        customer_id = program.customer_id if program is not None else 0
        client = self._client_fields(query, headers, user_agent, address, customer_id, day)
        message_id = ""
        if ivt == pb.IVT_NONE and event_type == pb.CLICK and self._duplicates is not None:
            click = PendingClick(validation, program_id, program, now, client, customer, query)
            if self._write_ahead_log is None:
                self._duplicates.submit(click, program_id, address or "", user_agent, day)
                return Tracked(validation, program, message_id)
            # Write-ahead: the answer waits for its event on disk, so for the check too.
            duplicate = await self._duplicates.seen_before(
                program_id, address or "", user_agent, day
            )
            self._record_checked_click(click, duplicate)
        else:
            # _outcome, inline on the hot path
            self._by_ivt[ivt][validation == pb.OK and ivt == pb.IVT_NONE] += 1
            outcome = self._outcomes[event_type, validation, ivt]
            message_id = self._ship(outcome, program_id, program, now, client, customer, query)
        if self._write_ahead_log is not None:
            await self._write_ahead_log.committed()
        return Tracked(validation, program, message_id)

    def _invalid_traffic(
        self,
        request: web.Request,
        headers: CIMultiDictProxy[str],
        query: MultiMapping[str],
        event_type: int,
        user_agent: str,
        now: float,
    ) -> int:
        """The one reason this event is not worth billing, checked from the cheapest up, or
        IVT_NONE (duplicate clicks are checked after, in Redis)."""
        crawler = self._known_crawler(user_agent)  # the memo's own lookup: no call on a hit
        if crawler is None:
            crawler = self._crawlers.is_crawler(user_agent)
        if crawler:
            return pb.IVT_KNOWN_CRAWLER
        if is_prefetch(headers):
            return pb.IVT_PREFETCH
        if event_type == pb.CLICK and self._links is not None:
            return self._links.check(request.path, query, now)
        return pb.IVT_NONE

    def _record_checked_click(self, click: PendingClick, duplicate: bool) -> None:
        ivt = pb.IVT_DUPLICATE_CLICK if duplicate else pb.IVT_NONE
        outcome = self._outcome(pb.CLICK, click.validation, ivt)
        self._ship(
            outcome,
            click.program_id,
            click.program,
            click.now,
            click.client,
            click.customer,
            click.query,
        )

    def _outcome(self, event_type: int, validation: int, ivt: int) -> bytes:
        self._by_ivt[ivt][is_billable(validation, ivt)] += 1
        return self._outcomes[event_type, validation, ivt]

    def _ship(
        self,
        outcome: bytes,
        program_id: str,
        program: Program | None,
        now: float,
        client: bytes,
        customer: int,
        query: MultiMapping[str],
    ) -> str:
        message_id, data = self._events.build(
            outcome, program_id, program, int(now * 1000), client, customer, _extra_params(query)
        )
        self._buffer.offer(message_id, data)  # or to the disk log, see EventBuffer
        return message_id

    def _client_ip(self, request: web.Request, headers: CIMultiDictProxy[str]) -> str | None:
        if self._trust_forwarded:
            forwarded = headers.get("X-Forwarded-For")
            if forwarded:
                # The load balancer appends the address it saw; earlier entries are the client's
                # own claims and can be forged. An address is ASCII: anything else is not one.
                address = forwarded.rsplit(",", 1)[-1].strip()
                return address if address.isascii() else None
        return request.remote


def _extra_params(query: MultiMapping[str]) -> Mapping[str, str]:
    if RESERVED_PARAMS.issuperset(query.keys()):
        return NO_PARAMS  # the common pixel: nothing but the program (and customer)
    return extra_params(query.items())


def _customer_id(text: str | None) -> int:
    """The customer parameter as an int; -1 when it is not a plain non-negative integer."""
    if text is None:
        return 0
    if text.isascii() and text.isdigit() and len(text) <= 10:
        return int(text)
    return -1


def _event_body(request: web.Request, program_id: str, tracked: Tracked) -> dict[str, object]:
    program = tracked.program
    return {
        "messageId": tracked.message_id,
        "programId": program_id,
        "programName": program.program_name if program else None,
        "customerId": program.customer_id if program else None,
        "customerName": program.customer_name if program else None,
        "checksum": program.checksum if program else None,
        "userAgent": valid_text(request.headers.get("User-Agent", "")[:MAX_USER_AGENT]),
        "valid": tracked.validation == pb.OK,
        "validation": pb.Validation.Name(tracked.validation),
    }


def _json_error(status: int, message: str, **fields: str) -> web.Response:
    body = json.dumps({"error": message, **fields})
    return web.Response(
        status=status,
        text=body,
        content_type="application/json",
        headers={"Cache-Control": NO_CACHE},
    )
