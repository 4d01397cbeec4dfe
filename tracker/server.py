"""Running the HTTP service: one process, or N worker processes sharing the port (SO_REUSEPORT).

Each worker is a whole tracker with its own cache, subscription and shipper. The supervisor only
starts workers, restarts one that dies, and passes SIGTERM/SIGINT on, waiting for their drains.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvloop
from aiohttp import web

from tracker.app import create_app
from tracker.logs import configure_logging
from tracker.settings import TrackerSettings

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0


def serve(settings: TrackerSettings) -> None:
    configure_logging(settings.log_level)
    if settings.workers == 1:
        run_worker(settings, reuse_port=False)
    else:
        Supervisor(settings).run()


def run_worker(settings: TrackerSettings, reuse_port: bool) -> None:
    configure_logging(settings.log_level)

    async def make_app() -> web.Application:
        return create_app(settings)

    log.info(
        "tracker starting",
        extra={"host": settings.host, "port": settings.port, "instance": settings.instance_id},
    )
    web.run_app(
        make_app(),
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
        shutdown_timeout=5.0,
        handle_signals=True,
    )
    log.info("tracker stopped", extra={"instance": settings.instance_id})


def _worker_main(settings: TrackerSettings) -> None:
    run_worker(settings, reuse_port=True)


class Supervisor:
    def __init__(self, settings: TrackerSettings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess | None] = [None] * settings.workers
        self._stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("starting tracker workers", extra={"workers": self._settings.workers})
        while not self._stopping:
            for index, worker in enumerate(self._workers):
                if worker is None or not worker.is_alive():
                    self._workers[index] = self._start(index, worker)
            time.sleep(0.2)
        self._shutdown()

    def _start(self, index: int, previous: BaseProcess | None) -> BaseProcess:
        if previous is not None:
            log.error(
                "tracker worker died, restarting",
                extra={"worker": index, "exitcode": previous.exitcode},
            )
            time.sleep(RESTART_DELAY)
        settings = dataclasses.replace(
            self._settings, instance_id=f"{self._settings.instance_id}-w{index}"
        )
        process = self._context.Process(
            target=_worker_main, args=(settings,), name=f"tracker-worker-{index}"
        )
        process.start()
        return process

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _shutdown(self) -> None:
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate()  # SIGTERM: each worker drains its own buffer
        deadline = time.monotonic() + self._settings.shipping.drain_seconds + 15
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.error("tracker worker did not stop in time, killing", extra={"pid": worker.pid})
                worker.kill()
                worker.join()
        log.info("tracker workers stopped")
