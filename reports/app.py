"""The aiohttp application of `reports serve`: routes and the lifecycle of every resource.

Start-up opens the DynamoDB client (rollups and report keys) and the Redis client (core data and
rate-limit counters), builds the services on them and starts the program directory's refresh.
Shutdown runs in reverse once aiohttp has stopped taking requests: the refresh stops, then the
clients close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio as redis
import uvloop
from aiohttp import web

from reports.api import RUNTIME, Runtime, Services, answer_failures, secure_headers, v1_gate
from reports.auth import KeyVerifier
from reports.bucket_cache import BucketCache
from reports.cached_reports import CachedReports
from reports.handlers import ApiHandlers
from reports.keys import KeyStore
from reports.metrics import ReportMetrics
from reports.ops import OpsHandlers, Readiness
from reports.programs import ProgramDirectory
from reports.ratelimit import RateLimiter
from reports.rollups import RollupReader, open_dynamodb
from reports.settings import ReportSettings
from tracker.task_stop import stop_tasks

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_REQUEST_BODY = 1024  # every route is a GET
OPS = web.AppKey("ops", OpsHandlers)
SETTINGS = web.AppKey("settings", ReportSettings)


def create_app(settings: ReportSettings, clock: Callable[[], float] = time.time) -> web.Application:
    """The app; its stores open when it starts (cleanup_ctx) and close when it stops."""
    metrics = ReportMetrics()
    app = web.Application(client_max_size=MAX_REQUEST_BODY, middlewares=[answer_failures, v1_gate])
    app[SETTINGS] = settings
    app[RUNTIME] = Runtime(metrics, clock)
    app[OPS] = ops = OpsHandlers(metrics)
    api = ApiHandlers()
    app.router.add_get("/v1/programs", api.programs)
    app.router.add_get("/v1/reports/{program_id}", api.report)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/", dashboard)
    if STATIC_DIR.is_dir():
        app.router.add_static("/static/", STATIC_DIR)
    app.on_response_prepare.append(secure_headers)
    app.cleanup_ctx.append(_stores)
    return app


async def dashboard(request: web.Request) -> web.StreamResponse:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise web.HTTPNotFound
    return web.FileResponse(index, headers={"Content-Type": "text/html; charset=utf-8"})


def open_redis(settings: ReportSettings, stack: AsyncExitStack) -> redis.Redis:
    timeout = settings.read_timeout_seconds
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    stack.push_async_callback(client.aclose)
    return client


async def _stores(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with AsyncExitStack() as stack:
        dynamodb = await open_dynamodb(settings.aws, settings.read_timeout_seconds, stack)
        client = open_redis(settings, stack)
        runtime = app[RUNTIME]
        services = _services(settings, dynamodb, client, runtime.clock)
        runtime.open(services)
        runtime.metrics.track_gauge(
            "reports_programs", "Programs in the directory", lambda: services.programs.size
        )
        runtime.metrics.track_gauge(
            "reports_cached_buckets",
            "Rollup buckets and computed rows in the report cache",
            services.reports.size,
        )
        app[OPS].readiness = Readiness(
            (client, dynamodb),
            {"rollups": settings.rollup_table, "report_keys": settings.report_keys_table},
            services.programs,
            settings.read_timeout_seconds,
        )
        refresh = asyncio.create_task(services.programs.run(), name="program-directory")
        refresh.add_done_callback(_log_crash)
        yield
        await stop_tasks([refresh])
        await services.reports.close()
        app[OPS].readiness = None
        runtime.open(None)


def _log_crash(task: asyncio.Task[None]) -> None:
    # A crashed refresh leaves the directory as it was: /readyz cannot see that, the log must.
    if not task.cancelled() and task.exception() is not None:
        log.error("program directory refresh crashed", exc_info=task.exception())


def _services(
    settings: ReportSettings,
    dynamodb: DynamoDBClient,
    client: redis.Redis,
    clock: Callable[[], float],
) -> Services:
    timeout = settings.read_timeout_seconds
    keys = KeyStore(dynamodb, settings.report_keys_table, timeout)
    return Services(
        verifier=KeyVerifier(keys),
        limiter=RateLimiter(client, settings.rate_limit, timeout, clock),
        programs=ProgramDirectory(client, timeout),
        reports=CachedReports(
            RollupReader(dynamodb, settings.rollup_table, timeout),
            BucketCache(settings.cache_buckets),
        ),
    )


# Bounds on a request's head (see tracker.server): an API request carries a few short headers.
MAX_HEADERS = 32
MAX_HEADER_FIELD_BYTES = 4096 + 128


def serve(settings: ReportSettings) -> None:
    """Run `reports serve` until SIGTERM or SIGINT, then stop cleanly."""
    log.info("reports starting", extra={"host": settings.host, "port": settings.port})
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,  # no line per request: addresses and keys stay out of the log
        print=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=5.0,
        handle_signals=True,
        max_headers=MAX_HEADERS,
        max_field_size=MAX_HEADER_FIELD_BYTES,
    )
    log.info("reports stopped")
