"""A canned Kinesis endpoint: answers every PutRecords with "all accepted" and nothing else.

Used to measure the tracker's own cost of shipping. kinesalite spends CPU on every record it
stores, on the same two cores as the tracker and hey; real Kinesis runs elsewhere. This endpoint
costs a little per call and nothing per record, so what the tracker's tree spends is its own.

    python -m bench.canned_kinesis PORT
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

ACCEPTED = b'{"FailedRecordCount":0,"Records":[]}'


async def put_records(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ACCEPTED, content_type="application/x-amz-json-1.1")


def main(port: int) -> None:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/", put_records)
    web.run_app(
        app, host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
