"""The consumer's /healthz: 200 while the coordinator cycles, 503 once it has stalled."""

from __future__ import annotations

import time
from typing import cast

from aiohttp.test_utils import TestClient, TestServer

from consumers.coordinator import Coordinator
from consumers.metrics import ConsumerMetrics
from consumers.ops_server import ops_app


class FakeCoordinator:
    def __init__(self, last_cycle: float) -> None:
        self.last_cycle = last_cycle
        self.held_shards = ["shardId-000000000000"]


async def healthz(last_cycle: float) -> tuple[int, dict[str, object]]:
    app = ops_app(cast(Coordinator, FakeCoordinator(last_cycle)), ConsumerMetrics(), 30.0)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        return response.status, await response.json()


async def test_healthy_while_the_coordinator_cycles() -> None:
    status, body = await healthz(time.monotonic())
    assert status == 200
    assert body["shards"] == ["shardId-000000000000"]


async def test_unhealthy_once_the_coordinator_has_stalled() -> None:
    status, body = await healthz(time.monotonic() - 31)
    assert status == 503
    assert body["status"] == "stalled"
