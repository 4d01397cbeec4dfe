"""A fault-injecting HTTP proxy in front of kinesalite.

No emulator ever answers PutRecords with partial failures, so this proxy makes them: for each
PutRecords call it withholds the entries that `should_fail` picks, forwards the rest, and merges a
response in which the withheld entries carry ProvisionedThroughputExceededException, exactly as
Kinesis reports throttled entries. Every other call passes through unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

FailurePolicy = Callable[[dict[str, Any]], bool]
THROTTLED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded for shard (injected by the test proxy)",
}


class FaultyKinesisProxy:
    def __init__(self, upstream: str, should_fail: FailurePolicy) -> None:
        self.upstream = upstream
        self.should_fail = should_fail
        self.failed_entries = 0
        self.put_calls = 0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FaultyKinesisProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        if not target.endswith(".PutRecords"):
            return await self._forward(request, body)
        self.put_calls += 1
        payload = json.loads(body)
        records = payload["Records"]
        failing = [self.should_fail(record) for record in records]
        forwarded = [r for r, fail in zip(records, failing, strict=True) if not fail]
        results: list[dict[str, Any]] = []
        if forwarded:
            upstream = await self._forward(request, json.dumps({**payload, "Records": forwarded}))
            assert upstream.body is not None
            assert upstream.status == 200
            results = json.loads(upstream.body)["Records"]  # type: ignore[arg-type]
        merged = iter(results)
        answer = [THROTTLED if fail else next(merged) for fail in failing]
        self.failed_entries += sum(failing)
        body_out = {"FailedRecordCount": sum(failing) + _failed(results), "Records": answer}
        return web.Response(body=json.dumps(body_out), content_type="application/x-amz-json-1.1")

    async def _forward(self, request: web.Request, body: bytes | str) -> web.Response:
        assert self._session is not None
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._session.post(
            self.upstream + request.path, data=body, headers=headers
        ) as upstream:
            content = await upstream.read()
            return web.Response(
                status=upstream.status,
                body=content,
                headers={"Content-Type": upstream.headers.get("Content-Type", "")},
            )


def _failed(results: list[dict[str, Any]]) -> int:
    return sum(1 for r in results if "ErrorCode" in r)
