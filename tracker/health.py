"""Liveness, readiness, metrics and the admin routes, and the Redis probe behind readiness."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from tracker.core import TrackerCore

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.5


class OpsHandlers:
    def __init__(self, core: TrackerCore) -> None:
        self._core = core

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.problems()
        if problems:
            return web.json_response({"status": "unavailable", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    def problems(self) -> dict[str, str]:
        core = self._core
        problems: dict[str, str] = {}
        if not core.store.available:
            problems["redis"] = "Redis does not answer"
        if not core.subscriber.live:
            problems["subscription"] = "the program-updates subscription is down"
        shipping = core.shipping_problem()
        if shipping:
            problems["shipping"] = shipping
        spill = core.spill_problem()
        if spill:
            problems["spill"] = spill
        return problems

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self._core.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def purge(self, request: web.Request) -> web.Response:
        expected = self._core.settings.admin_token or ""
        given = request.headers.get("Authorization", "")
        if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return web.json_response(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        purged = len(self._core.cache)
        self._core.cache.clear()
        self._core.resolver.invalidate_all()
        self._core.metrics.cache_purges.inc()
        log.info("program cache purged", extra={"programs": purged})
        return web.json_response({"purged": purged})


async def probe_redis(core: TrackerCore) -> None:
    """Ping Redis twice a second: readiness, and the store's fail-fast switch, follow the answer."""
    while True:
        try:
            async with asyncio.timeout(max(core.settings.redis_timeout_seconds * 4, 0.2)):
                await core.redis_client.ping()
        except (RedisError, OSError, TimeoutError):
            core.store.mark_down()
            core.metrics.redis_up.set(0)
        else:
            core.store.mark_up()
            core.metrics.redis_up.set(1)
        await asyncio.sleep(PROBE_INTERVAL)
