"""The consumer's own HTTP endpoint: /metrics for Prometheus and /healthz for the orchestrator.

It runs on the worker's event loop, so /healthz answers only while that loop turns, and it says
503 when the lease coordinator has not completed a cycle for a while (stuck on DynamoDB, or
wedged): a container that is alive but no longer reading shards is restarted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumers.coordinator import Coordinator
from consumers.metrics import ConsumerMetrics
from consumers.settings import ConsumerSettings


def ops_app(
    coordinator: Coordinator, metrics: ConsumerMetrics, stale_after: float
) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        age = time.monotonic() - coordinator.last_cycle
        if age > stale_after:
            return web.json_response(
                {"status": "stalled", "seconds_since_last_cycle": round(age, 1)}, status=503
            )
        return web.json_response({"status": "ok", "shards": coordinator.held_shards})

    async def metrics_page(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app


@asynccontextmanager
async def ops_server(
    host: str, port: int, coordinator: Coordinator, metrics: ConsumerMetrics, stale_after: float
) -> AsyncIterator[None]:
    runner = web.AppRunner(ops_app(coordinator, metrics, stale_after), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()


async def serve_ops(
    stack: AsyncExitStack,
    settings: ConsumerSettings,
    coordinator: Coordinator,
    metrics: ConsumerMetrics,
) -> None:
    """A worker's endpoint on CONSUMER_METRICS_PORT (0: none), for as long as `stack` lasts.
    Stalled: no coordinator cycle for three renewal intervals (and some slack)."""
    if settings.metrics_port:
        stale_after = 3 * settings.leases.renew_seconds + 10
        await stack.enter_async_context(
            ops_server(
                settings.metrics_host, settings.metrics_port, coordinator, metrics, stale_after
            )
        )
