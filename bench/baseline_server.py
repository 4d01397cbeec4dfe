"""The baseline: a bare aiohttp + uvloop server answering the same 43-byte GIF from one route,
access log off. What the tracker is measured against.

    python -m bench.baseline_server PORT [WORKERS]
"""

from __future__ import annotations

import multiprocessing
import sys

import uvloop
from aiohttp import web

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
HEADERS = {"Content-Type": "image/gif", "Cache-Control": "no-cache, no-store, must-revalidate"}


async def pixel(request: web.Request) -> web.Response:
    return web.Response(body=GIF, headers=HEADERS)


def serve(port: int, reuse_port: bool) -> None:
    app = web.Application()
    app.router.add_get("/v1/pixel", pixel)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        reuse_port=reuse_port,
        loop=uvloop.new_event_loop(),
    )


def main(port: int, workers: int) -> None:
    if workers == 1:
        serve(port, reuse_port=False)
        return
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=serve, args=(port, True)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)
