"""Liveness, readiness and metrics, as the tracker's: `/healthz`, `/readyz`, `/metrics`.

Readiness asks the stores themselves (Redis PING, DescribeTable of both tables) at most once
every READY_CACHE_SECONDS, whatever the probe rate: a load balancer polling every second must
not become a load of its own. Concurrent probes share one check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from reports.metrics import ReportMetrics
from reports.programs import ProgramDirectory
from reports.unavailable import UnavailableError, bounded

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

READY_CACHE_SECONDS = 2.0
USABLE_TABLE = ("ACTIVE", "UPDATING")


class Readiness:
    """What stops this process from answering reports now: {what: why}; empty when ready."""

    def __init__(
        self,
        stores: tuple[redis.Redis, DynamoDBClient],
        tables: dict[str, str],
        programs: ProgramDirectory,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis, self._dynamodb = stores
        self._tables = tables  # what -> table name
        self._programs = programs
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at = -float("inf")
        self._problems: dict[str, str] = {}

    async def problems(self) -> dict[str, str]:
        async with self._lock:
            if self._clock() - self._checked_at >= READY_CACHE_SECONDS:
                self._problems = await self._check()
                self._checked_at = self._clock()
            return dict(self._problems)

    async def _check(self) -> dict[str, str]:
        checks = [self._redis_problem(), *map(self._table_problem, self._tables.values())]
        answers = await asyncio.gather(*checks)
        names = ["redis", *self._tables]
        problems = {name: why for name, why in zip(names, answers, strict=True) if why}
        if not self._programs.loaded and "redis" not in problems:
            problems["programs"] = "the program directory is not loaded yet"
        return problems

    async def _redis_problem(self) -> str | None:
        try:
            await bounded(self._redis.ping(), "redis", self._timeout)
        except UnavailableError:
            return "Redis does not answer"
        return None

    async def _table_problem(self, table: str) -> str | None:
        try:
            answer = await bounded(
                self._dynamodb.describe_table(TableName=table), table, self._timeout
            )
        except UnavailableError:
            return f"table {table} is missing or DynamoDB does not answer"
        status = answer["Table"].get("TableStatus", "ACTIVE")
        return None if status in USABLE_TABLE else f"table {table} is {status}"


class OpsHandlers:
    """The routes; the readiness check arrives once the stores are open (reports.app)."""

    def __init__(self, metrics: ReportMetrics) -> None:
        self._metrics = metrics
        self.readiness: Readiness | None = None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = self.readiness
        problems = {"stores": "not open"} if readiness is None else await readiness.problems()
        if problems:
            return web.json_response({"status": "unavailable", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(self, request: web.Request) -> web.Response:
        body = self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
