"""The aiohttp application: routes and the lifecycle of every resource, in one place.

Start-up opens Redis and Kinesis clients and the on-disk event log, and starts the background
tasks (Redis probe, push subscriber, the day's visitor secret, shipper, its steering, the log's
adoption scan, the duplicate-click checker). Shutdown runs in reverse after aiohttp has stopped
accepting requests: background tasks stop, the clicks still being checked are recorded, the
shipper ships what it can within SHIP_DRAIN_SECONDS and writes the rest to the log, the log and
the clients close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from aiohttp import web

from tracker.core import TrackerCore, build_core
from tracker.events.shipper import Shipper, ShipperOptions
from tracker.events.sink import KinesisSink
from tracker.handlers import TrackingHandlers
from tracker.health import OpsHandlers, probe_redis
from tracker.settings import TrackerSettings
from tracker.task_stop import stop_tasks

log = logging.getLogger(__name__)

CORE = web.AppKey("core", TrackerCore)
MAX_REQUEST_BODY = 1024  # every route is a GET or a body-less POST
DUPLICATE_SETTLE_SECONDS = 5.0


def create_app(
    settings: TrackerSettings, clock: Callable[[], float] = time.time
) -> web.Application:
    core = build_core(settings, clock=clock)
    app = web.Application(client_max_size=MAX_REQUEST_BODY)
    app[CORE] = core
    tracking = TrackingHandlers(core)
    ops = OpsHandlers(core)
    app.router.add_get("/v1/pixel", tracking.pixel)
    app.router.add_get("/v1/click", tracking.click)
    app.router.add_get("/event/{program_id}", tracking.event)
    app.router.add_get("/v1/conversion", tracking.conversion)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    if settings.admin_token:
        app.router.add_post("/admin/cache/purge", ops.purge)
    app.cleanup_ctx.append(_redis_lifecycle)
    app.cleanup_ctx.append(_shipping_lifecycle)
    return app


async def _redis_lifecycle(app: web.Application) -> AsyncIterator[None]:
    core = app[CORE]
    tasks = [
        _start(probe_redis(core), "redis-probe"),
        _start(core.subscriber.run(), "program-subscriber"),
        _start(core.secrets.run(), "visitor-secrets"),
    ]
    yield
    await stop_tasks(tasks)
    await core.resolver.close()
    await core.redis_client.aclose()
    await core.pubsub_client.aclose()


async def _shipping_lifecycle(app: web.Application) -> AsyncIterator[None]:
    core = app[CORE]
    shipping = core.settings.shipping
    connector = aiohttp.TCPConnector(limit=shipping.max_in_flight + 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        sink = await _kinesis_sink(core.settings, http)
        await core.log.open()
        scanner = _start(core.log.run(), "spill-scan")
        shipper = Shipper(core.buffer, core.log, sink, core.metrics, _shipper_options(core))
        tasks = [_start(shipper.run(), "shipper"), _start(shipper.steer(), "shipper-steering")]
        duplicates = core.integrity.duplicates
        checker = _start(duplicates.run(), "duplicate-clicks") if duplicates is not None else None
        yield
        if duplicates is not None and checker is not None:
            # Clicks answered before their duplicate check: their events first (each pipeline
            # is bounded by REDIS_TIMEOUT_MS; a stuck one cannot hold up the shutdown).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DUPLICATE_SETTLE_SECONDS):
                    await asyncio.shield(duplicates.settle())
            await stop_tasks([checker])
        log.info("draining events", extra={"events": shipper.pending})
        kept = await asyncio.shield(
            shipper.drain([*tasks, scanner], core.fallback, shipping.drain_seconds)
        )
        await asyncio.shield(core.log.close())
        log.info(
            "events drained",
            extra={"kept_on_disk": core.log.waiting_events, "written_at_shutdown": kept},
        )


def _shipper_options(core: TrackerCore) -> ShipperOptions:
    shipping = core.settings.shipping
    return ShipperOptions(
        linger=shipping.linger_seconds,
        max_in_flight=shipping.max_in_flight,
        aggregate=shipping.aggregate,
        spill_after=shipping.spill_after_seconds,
        write_ahead=shipping.write_ahead,
    )


async def _kinesis_sink(settings: TrackerSettings, http: aiohttp.ClientSession) -> KinesisSink:
    """Credentials and endpoint as botocore resolves them, for the lean PutRecords path."""
    session = get_session()
    credentials = await session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials found (environment, profile, or task role)")
    endpoint = settings.aws.kinesis_endpoint
    if endpoint is None:
        async with session.create_client("kinesis", region_name=settings.aws.region) as client:
            endpoint = client.meta.endpoint_url
    return KinesisSink(http, endpoint, settings.aws.region, settings.event_stream, credentials)


def _start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_log_crash)
    return task


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error(
            "background task crashed", extra={"task": task.get_name()}, exc_info=task.exception()
        )
