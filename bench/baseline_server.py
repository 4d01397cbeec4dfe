"""The baseline: a bare aiohttp + uvloop server answering the same 43-byte GIF from the tracker's
GET routes (/v1/pixel, /v1/conversion, /v1/click), access log off. What the tracker is measured
against.

    python -m bench.baseline_server PORT [WORKERS] [--pre-serialized]

With --pre-serialized it answers with the tracker's own pre-serialized answer
(tracker.answers.FixedAnswer) instead of a web.Response: the floor of the tracker's approach,
against which the tracker's remaining cost (validation, event, shipping) shows alone.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from types import FrameType

import uvloop
from aiohttp import web

from tracker.answers import FixedAnswer

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
HEADERS = {"Content-Type": "image/gif", "Cache-Control": "no-cache, no-store, must-revalidate"}


ANSWER = FixedAnswer(200, HEADERS, GIF)
ROUTES = ("/v1/pixel", "/v1/conversion", "/v1/click")


async def pixel(request: web.Request) -> web.Response:
    return web.Response(body=GIF, headers=HEADERS)


async def pre_serialized_pixel(request: web.Request) -> web.StreamResponse:
    return ANSWER.respond(request)


def serve(port: int, reuse_port: bool, pre_serialized: bool = False) -> None:
    app = web.Application()
    handler = pre_serialized_pixel if pre_serialized else pixel
    # The tracker's routes, each answered with the GIF: a case can send the baseline the very
    # URL it sends the tracker (bench/route_versus.py), so that aiohttp's own work is the same.
    for path in ROUTES:
        app.router.add_get(path, handler)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        reuse_port=reuse_port,
        loop=uvloop.new_event_loop(),
    )


def main(port: int, workers: int, pre_serialized: bool) -> None:
    if workers == 1:
        serve(port, reuse_port=False, pre_serialized=pre_serialized)
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=serve, args=(port, True, pre_serialized)) for _ in range(workers)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        for process in processes:
            process.terminate()  # else the workers outlive this process, still bound

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()


if __name__ == "__main__":
    flags = {"--pre-serialized"}
    positional = [arg for arg in sys.argv[1:] if arg not in flags]
    main(
        int(positional[0]),
        int(positional[1]) if len(positional) > 1 else 1,
        "--pre-serialized" in sys.argv,
    )
