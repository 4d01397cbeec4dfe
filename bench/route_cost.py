"""The tracker's own CPU per request for each tracking route, in process: the handler as aiohttp
calls it (RequestFacts, validation against L1, integrity, privacy, the event built and offered to
the buffer, a click's duplicate check answered "first seen") and the PutRecords body of the events
it made, without aiohttp's parsing and writing around it. Shows in a minute where a route's extra
cost over the pixel goes, which a run of bench.run cannot tell from the machine's noise.

    .venv/bin/python -m bench.route_cost [--quick] [--runs N] [--profile ROUTE]

Requests are made off the clock, one Request per call. Each route's requests share one
URL, as under `hey` (which sends one URL, and yarl hands aiohttp the URL it built last time, its
query parsed once); "conversion, each order new" gives each request a URL of its own (its own
click id, order id and value), as a shop's thank-you pages do, so that `request.query` is parsed
per request. With --profile, ROUTE's loop runs once under cProfile instead.

Figures are per request and run on one core without aiohttp around them: in a `tracker serve`
under hey the same code costs about twice as much (cold caches, the load generator beside it).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from yarl import URL

from bench.demo_programs import (
    DEMO_CLICK,
    DEMO_CLICK_WITH_ID,
    DEMO_CONVERSION,
    DEMO_PIXEL,
    DEMO_PROGRAM_ID,
    demo_programs,
)
from bench.micro import (
    Path,
    arguments,
    per_call,
    print_rows,
    repetition_count,
    rows,
    run_count,
    scaled,
)
from tracker.core import build_core
from tracker.events.sink import put_records_body
from tracker.handlers import TrackingHandlers
from tracker.privacy.daily_secret import utc_day
from tracker.settings import TrackerSettings

CALLS = 10_000
FRESH_CONVERSION = "conversion, each order new"
ROUTES = {
    "pixel": DEMO_PIXEL,
    "conversion": DEMO_CONVERSION,
    FRESH_CONVERSION: DEMO_CONVERSION,
    "click": DEMO_CLICK,
    "click with id": DEMO_CLICK_WITH_ID,
}
HEADERS = CIMultiDict({"Host": "127.0.0.1", "User-Agent": "hey/0.0.1", "Accept-Encoding": "gzip"})
PUT_RECORDS_BATCH = 500
Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


def _handlers() -> TrackingHandlers:
    """Handlers on a core with the demo programs in L1 and the day's visitor secret at hand (as
    the background tasks would have them); no Redis is reached."""
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "LOG_LEVEL": "WARNING"}
    core = build_core(TrackerSettings.from_env(env))
    for program in demo_programs():
        core.cache.put(program, program.program_id)
    core.secrets._secrets[utc_day(time.time())] = b"s" * 32
    return TrackingHandlers(core)


def _call(handler: Handler, request: web.Request) -> None:
    """One request, as aiohttp awaits its handler: on an L1 hit it never suspends."""
    try:
        handler(request).send(None)
    except StopIteration:
        return
    raise AssertionError("the handler suspended")


def _checked(handlers: TrackingHandlers) -> None:
    """The clicks waiting for their duplicate check, answered "first seen" (Redis's own part is
    not the handler's), so that a click's event is built and shipped as the pixel's is."""
    duplicates = handlers._duplicates
    if duplicates is not None:
        for _, click in duplicates._waiting:
            handlers._record_checked_click(click, None)
        duplicates._waiting.clear()


class _Transport:
    """What the handler asks of the connection: the peer's address, and whether it is open."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def fresh_conversion(number: int) -> str:
    """A conversion with every parameter well formed, its click id, order id and value new."""
    return (
        f"/v1/conversion?program={DEMO_PROGRAM_ID}&click_id={number:032x}"
        f"&order_id=SO-{number:08d}&value={number % 100_000}.{number % 100:02d}&currency=EUR"
    )


def _template(route: str) -> web.Request:
    """A mocked request for the route, to clone: making one costs milliseconds, a clone
    microseconds."""
    return make_mocked_request("GET", ROUTES[route], headers=HEADERS, transport=_Transport())


def _requests(template: web.Request, route: str, calls: int) -> list[web.Request]:
    """`calls` requests for the route, each a Request of its own."""
    if route == FRESH_CONVERSION:
        started = time.time_ns()  # new ids every time
        return [template.clone(rel_url=URL(fresh_conversion(started + n))) for n in range(calls)]
    return [template.clone() for _ in range(calls)]


def _ship(handlers: TrackingHandlers) -> None:
    """The clicks' duplicate checks answered, then the waiting events' PutRecords body."""
    _checked(handlers)
    put_records_body("tracking-events", handlers._buffer.take_all())


def _seconds(handlers: TrackingHandlers, route: str, calls: int) -> float:
    """Seconds for `calls` requests through the route's handler and their events' PutRecords
    bodies, timed a batch at a time: requests are made between batches, and each batch's events
    shipped, so that no more of them are alive at once than in a running tracker (the garbage
    collector, on as in the tracker, would otherwise scan them all again and again)."""
    handler = _handler(handlers, route)
    template = _template(route)
    handlers._buffer.take_all()
    elapsed = 0.0
    for _ in range(max(1, calls // PUT_RECORDS_BATCH)):
        requests = _requests(template, route, PUT_RECORDS_BATCH)
        started = time.perf_counter()
        for request in requests:
            _call(handler, request)
        _ship(handlers)
        elapsed += time.perf_counter() - started
    return elapsed


def _handler(handlers: TrackingHandlers, route: str) -> Handler:
    name = route.partition(",")[0].removesuffix(" with id")
    handler: Handler = getattr(handlers, name)
    return handler


def _route_path(handlers: TrackingHandlers, route: str, calls: int) -> Path:
    calls = max(1, calls // PUT_RECORDS_BATCH) * PUT_RECORDS_BATCH

    def repetition() -> float:
        return per_call(_seconds(handlers, route, calls), calls)

    return Path(route, ROUTES[route], calls, repetition)


def _profile(handlers: TrackingHandlers, route: str, calls: int) -> None:
    _seconds(handlers, route, calls)  # memos filled, as in a running tracker
    with cProfile.Profile() as profile:
        _seconds(handlers, route, calls)
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def _event_bytes(handlers: TrackingHandlers, route: str) -> int:
    handlers._buffer.take_all()
    _call(_handler(handlers, route), _requests(_template(route), route, 1)[0])
    _checked(handlers)
    return len(handlers._buffer.take_all()[0].data)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--profile", choices=list(ROUTES))
    args = parser.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())  # make_mocked_request wants one
    handlers = _handlers()
    calls = scaled(CALLS, args.quick)
    if args.profile:
        _profile(handlers, args.profile, calls)
        return
    chosen = [_route_path(handlers, route, calls) for route in ROUTES]
    print_rows(rows(chosen, run_count(args), repetition_count(args.quick)))
    print("event bytes:", {route: _event_bytes(handlers, route) for route in ROUTES})


if __name__ == "__main__":
    main()
