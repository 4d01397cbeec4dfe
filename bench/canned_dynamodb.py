"""A canned DynamoDB endpoint for the events consumer: the event writes succeed at once.

Like bench/canned_kinesis.py for the tracker, it takes the far end's per-item work out of a
measurement of the consumer's own CPU: moto spends far more CPU per item than the consumer, on
the same two cores, and real DynamoDB runs elsewhere. Only the calls made per event are canned:

- BatchWriteItem (the events writer, 25 items a call) answers "nothing unprocessed";
- BatchGetItem (the suppression list's lookup of a batch's user keys) answers "none found",
  i.e. no user is suppressed.

Everything else (the lease table's Scan, PutItem and conditional UpdateItem, dead letters) goes on
to moto unchanged: a lease needs real conditional writes, and it costs a few calls per shard every
few seconds, whatever the traffic. The endpoint runs on a thread of the bench's own process, whose
CPU no measurement counts.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from tests.support.proxy import EmulatorProxy

CONTENT_TYPE = "application/x-amz-json-1.0"
NOTHING_UNPROCESSED = b'{"UnprocessedItems":{}}'
NONE_FOUND = b'{"Responses":{},"UnprocessedKeys":{}}'


class CannedDynamoDB(EmulatorProxy):
    """Answers the per-event calls itself, passes the rest on to `upstream` (moto)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.write_requests = 0  # PutRequests answered, to check the consumer wrote them all

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        if target.endswith(".BatchWriteItem"):
            # Counted without parsing: the body is the client's JSON, one key per request.
            self.write_requests += body.count(b'"PutRequest"')
            return web.Response(body=NOTHING_UNPROCESSED, content_type=CONTENT_TYPE)
        if target.endswith(".BatchGetItem"):
            return web.Response(body=NONE_FOUND, content_type=CONTENT_TYPE)
        return await self.forward(request, body)


@contextmanager
def canned_dynamodb(upstream: str) -> Iterator[CannedDynamoDB]:
    """The endpoint running on a thread with its own event loop; its `url` is set."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="canned-dynamodb", daemon=True)
    thread.start()
    endpoint = CannedDynamoDB(upstream)
    try:
        asyncio.run_coroutine_threadsafe(endpoint.start(), loop).result(timeout=30)
        yield endpoint
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
