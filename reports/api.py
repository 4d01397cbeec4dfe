"""What every request goes through: the services it uses, the `/v1/` gate (key, then rate
limit), the one place that maps failures to answers, and the headers every answer carries."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from reports.auth import AuthError, KeyVerifier, bearer_token
from reports.cached_reports import CachedReports
from reports.keys import ReportKey
from reports.metrics import ReportMetrics
from reports.programs import ProgramDirectory
from reports.ratelimit import Allowance, RateLimiter
from reports.rollups import StoreUnavailable
from reports.unavailable import UnavailableError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOG_EVERY_SECONDS = 10.0
KEY = web.RequestKey("report_key", ReportKey)
ALLOWANCE = web.RequestKey("allowance", Allowance)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Services:
    """The stores' clients and what is built on them, opened at start-up (reports.app)."""

    verifier: KeyVerifier
    limiter: RateLimiter
    programs: ProgramDirectory
    reports: CachedReports  # the rollups, read through the bucket cache


class Runtime:
    """The app's state: metrics from the start, services once the stores are open."""

    def __init__(self, metrics: ReportMetrics, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.clock = clock  # epoch seconds: rate-limit windows, a report's default dates
        self._services: Services | None = None
        self._logged: dict[str, float] = {}

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the stores are not open")  # a request before start-up: a bug
        return self._services

    def open(self, services: Services | None) -> None:
        self._services = services

    def worth_logging(self, failure: str) -> bool:
        """At most one line per kind of failure every LOG_EVERY_SECONDS: a store that is down
        fails every request, and the log must not become a line per request."""
        now = time.monotonic()
        if now - self._logged.get(failure, -math.inf) < LOG_EVERY_SECONDS:
            return False
        self._logged[failure] = now
        return True


RUNTIME = web.AppKey("runtime", Runtime)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def answer_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place failures become answers: a store down or slow is 503, and so is a bug
    (counted and logged, never shown); every answer is counted by route and status."""
    runtime = request.app[RUNTIME]
    status = 503
    try:
        response = await _answer(request, handler, runtime)
        status = response.status
        return response
    except web.HTTPException as exc:  # aiohttp's own answers: 404, 405, static files' 304
        status = exc.status
        raise
    finally:
        runtime.metrics.requests.labels(_route(request), str(status)).inc()


def _route(request: web.Request) -> str:
    """The route's pattern (a label of bounded cardinality), not the path asked for."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


async def _answer(request: web.Request, handler: Handler, runtime: Runtime) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/v1/") or exc.status < 400:
            raise
        # The API answers JSON throughout, its 404s and 405s included (a 405 keeps its Allow).
        kept = {name: exc.headers[name] for name in ("Allow",) if name in exc.headers}
        return error(exc.status, (exc.reason or "error").lower(), kept)
    except (UnavailableError, StoreUnavailable) as exc:
        store = exc.what if isinstance(exc, UnavailableError) else "rollups"
        runtime.metrics.store_errors.labels(store).inc()
        if runtime.worth_logging(store):
            log.warning("store unavailable", extra={"store": store, "error": _kind(exc)})
        return web.json_response({"error": "unavailable", "store": store}, status=503)
    except Exception:
        runtime.metrics.internal_errors.inc()
        if runtime.worth_logging("internal"):
            log.exception("unexpected error", extra={"route": _route(request)})
        return error(503, "internal")


def _kind(exc: BaseException) -> str:
    """The error's class, and its cause's: what broke, never the data it carried."""
    cause = exc.__cause__
    return type(exc).__name__ + (f" from {type(cause).__name__}" if cause is not None else "")


@web.middleware
async def v1_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every `/v1/` request: a valid key (401 otherwise), then one count against its hourly
    limit (429 past it). Unmatched `/v1/` paths too: a caller without a key learns nothing."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    runtime = request.app[RUNTIME]
    services = runtime.services
    try:
        key = await services.verifier.verify(bearer_token(request.headers.get("Authorization")))
    except AuthError as failure:
        runtime.metrics.auth_failures.inc()
        return error(401, "unauthorized", {"WWW-Authenticate": failure.challenge()})
    allowance = await services.limiter.take(key.key_id)
    request[KEY] = key
    request[ALLOWANCE] = allowance
    if not allowance.allowed:
        runtime.metrics.rate_limited.inc()
        return error(429, "rate limit exceeded")
    return await handler(request)


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, static files and error pages included (on_response_prepare)."""
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith("/v1/"):
        headers["Cache-Control"] = "no-store"
        allowance = request.get(ALLOWANCE)
        if allowance is not None:
            headers.update(allowance.headers())
