"""A fault-injecting HTTP proxy in front of moto's DynamoDB.

moto never answers BatchWriteItem with UnprocessedItems, so this proxy makes them: for each
BatchWriteItem call it withholds the write requests that `should_withhold` picks, forwards the rest
to moto, and answers with the withheld ones in `UnprocessedItems` (merged with whatever moto left
unprocessed), exactly as DynamoDB reports requests it did not get to. It can also answer whole
BatchWriteItem calls with HTTP 400 ProvisionedThroughputExceededException (`throttle_calls`).
And it can refuse, as DynamoDB refuses an item over 400 KB, every BatchWriteItem or PutItem that
carries an item `refuse` picks, with HTTP 400 ValidationException. Every other call passes through
unchanged.

Real DynamoDB fails the whole call with ProvisionedThroughputExceededException when it can process
none of the items; this proxy answers with every request in UnprocessedItems instead (the other
shape a client must handle), and `throttle_calls` gives the whole-call failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tests.support.proxy import EmulatorProxy

WriteRequest = dict[str, Any]
WithholdPolicy = Callable[[WriteRequest], bool]
CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded "
    "(injected by the test proxy)",
}


TOO_BIG = {
    "__type": "com.amazon.coral.validate#ValidationException",
    "message": "Item size has exceeded the maximum allowed size (injected by the test proxy)",
}


def never(_request: WriteRequest) -> bool:
    return False


def always(_request: WriteRequest) -> bool:
    return True


def request_key(request: WriteRequest) -> str:
    """A stable identity for one write request (its item's JSON, keys sorted)."""
    body = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key")
    return json.dumps(body, sort_keys=True)


def withhold_first_time_every(n: int) -> WithholdPolicy:
    """Withholds every n-th distinct request the first time it is seen, never again."""
    seen: set[str] = set()

    def policy(request: WriteRequest) -> bool:
        key = request_key(request)
        if key in seen:
            return False
        seen.add(key)
        return len(seen) % n == 0

    return policy


class FaultyDynamoDBProxy(EmulatorProxy):
    def __init__(self, upstream: str, should_withhold: WithholdPolicy = never) -> None:
        super().__init__(upstream)
        self.should_withhold = should_withhold
        self.refuse: WithholdPolicy = never
        self.refused_calls = 0
        self.throttle_calls = 0  # answer this many coming BatchWriteItem calls with a 400
        self.withheld_requests = 0
        self.throttled_calls = 0
        self.batch_calls = 0
        self.forwarded_requests = 0

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if target.endswith(".PutItem"):
            return await self._put_item(request, body)
        if target.endswith(".BatchWriteItem"):
            return await self._batch_write(request, body)
        return await self.forward(request, body)

    async def _put_item(self, request: web.Request, body: bytes) -> web.Response:
        if self.refuse({"PutRequest": {"Item": json.loads(body)["Item"]}}):
            return self._refused()
        return await self.forward(request, body)

    async def _batch_write(self, request: web.Request, body: bytes) -> web.Response:
        writes = [w for requests in json.loads(body)["RequestItems"].values() for w in requests]
        if any(self.refuse(write) for write in writes):
            return self._refused()
        self.batch_calls += 1
        if self.throttle_calls > 0:
            self.throttle_calls -= 1
            self.throttled_calls += 1
            return web.Response(status=400, body=json.dumps(THROTTLED), content_type=CONTENT_TYPE)
        payload = json.loads(body)
        forwarded: dict[str, list[WriteRequest]] = {}
        withheld: dict[str, list[WriteRequest]] = {}
        for table, requests in payload["RequestItems"].items():
            for write in requests:
                side = withheld if self.should_withhold(write) else forwarded
                side.setdefault(table, []).append(write)
        self.withheld_requests += sum(len(r) for r in withheld.values())
        self.forwarded_requests += sum(len(r) for r in forwarded.values())
        answer: dict[str, Any] = {"UnprocessedItems": {}}
        if forwarded:
            upstream = await self.forward(
                request, json.dumps({**payload, "RequestItems": forwarded})
            )
            if upstream.status != 200:
                return upstream  # a real error from moto goes back unchanged
            assert upstream.body is not None
            answer = json.loads(upstream.body)  # type: ignore[arg-type]
            answer.setdefault("UnprocessedItems", {})
        unprocessed: dict[str, list[WriteRequest]] = answer["UnprocessedItems"]
        for table, requests in withheld.items():
            unprocessed.setdefault(table, []).extend(requests)
        return web.Response(body=json.dumps(answer), content_type=CONTENT_TYPE)

    def _refused(self) -> web.Response:
        self.refused_calls += 1
        return web.Response(status=400, body=json.dumps(TOO_BIG), content_type=CONTENT_TYPE)
