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

from aiohttp import web

from tests.support.proxy import EmulatorProxy

FailurePolicy = Callable[[dict[str, Any]], bool]
THROTTLED = {
    "ErrorCode": "ProvisionedThroughputExceededException",
    "ErrorMessage": "Rate exceeded for shard (injected by the test proxy)",
}


class FaultyKinesisProxy(EmulatorProxy):
    def __init__(self, upstream: str, should_fail: FailurePolicy) -> None:
        super().__init__(upstream)
        self.should_fail = should_fail
        self.failed_entries = 0
        self.put_calls = 0

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if not target.endswith(".PutRecords"):
            return await self.forward(request, body)
        self.put_calls += 1
        payload = json.loads(body)
        records = payload["Records"]
        failing = [self.should_fail(record) for record in records]
        forwarded = [r for r, fail in zip(records, failing, strict=True) if not fail]
        results: list[dict[str, Any]] = []
        if forwarded:
            upstream = await self.forward(request, json.dumps({**payload, "Records": forwarded}))
            assert upstream.body is not None
            assert upstream.status == 200
            results = json.loads(upstream.body)["Records"]  # type: ignore[arg-type]
        merged = iter(results)
        answer = [THROTTLED if fail else next(merged) for fail in failing]
        self.failed_entries += sum(failing)
        body_out = {"FailedRecordCount": sum(failing) + _failed(results), "Records": answer}
        return web.Response(body=json.dumps(body_out), content_type="application/x-amz-json-1.1")


def _failed(results: list[dict[str, Any]]) -> int:
    return sum(1 for r in results if "ErrorCode" in r)
