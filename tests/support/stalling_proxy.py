"""A proxy in front of moto's DynamoDB that holds some BatchWriteItem calls until released.

It makes a write that outlasts a Lambda invocation's deadline. Once released, a held call is
answered with a throttling error and never reaches moto, so nothing it carried is stored later
behind the test's back.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tests.support.dynamodb_proxy import CONTENT_TYPE, THROTTLED, WithholdPolicy
from tests.support.proxy import EmulatorProxy


class StallingDynamoDBProxy(EmulatorProxy):
    def __init__(self, upstream: str, stall: WithholdPolicy) -> None:
        super().__init__(upstream)
        self.stall = stall
        self.stalled_calls = 0
        self.released = asyncio.Event()

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if target.endswith(".BatchWriteItem"):
            writes = [w for ws in json.loads(body)["RequestItems"].values() for w in ws]
            if any(self.stall(write) for write in writes):
                self.stalled_calls += 1
                await self.released.wait()
                return web.Response(
                    status=400, body=json.dumps(THROTTLED), content_type=CONTENT_TYPE
                )
        return await self.forward(request, body)

    async def close(self) -> None:
        self.released.set()
        await super().close()
