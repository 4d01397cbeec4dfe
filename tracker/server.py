"""Running the HTTP service: one process, or N worker processes sharing the port (SO_REUSEPORT).

Each worker is a whole tracker with its own cache, subscription and shipper. The supervisor only
starts workers, restarts one that dies, and passes SIGTERM/SIGINT on, waiting for their drains.
It also owns the private directory where workers share their metrics (tracker.workermetrics): it
makes it, folds a dead worker's counts into the retired ones before restarting it, and removes it.
A supervisor killed outright (SIGKILL) leaves no orphans: a worker whose supervisor is gone stops
as on SIGTERM (tracker.parent_watch).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvloop
from aiohttp import web

from tracker.app import CORE, create_app
from tracker.bounded_serving import Address, run_app
from tracker.logs import configure_logging
from tracker.parent_watch import ParentWatch
from tracker.settings import TrackerSettings
from tracker.workermetrics.directory import SnapshotDirectory
from tracker.workermetrics.home import MetricsHome
from tracker.workermetrics.worker import SharedMetrics, WorkerSlot

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
# What aiohttp parses of a request's head is bounded by its header count times the longest
# header, and reading and parsing a head costs ~1 us a KiB here: at aiohttp's defaults (128
# headers of 8,190 bytes) one request of a MiB cost ~860 us, twenty pixels' worth
# (docs/benchmarks.md, "Hostile requests"). A browser sends 10 to 20 headers with an image, a
# load balancer or CDN adds a few; the longest is the Referer, which browsers cut at 4 KiB (and
# cross-site, by default, to the origin). Past either bound aiohttp answers 400 without calling
# the tracker. The request line keeps aiohttp's 8,190 bytes: a TC string travels there. The
# whole head, request line included, is bounded too (tracker.head_bound: 20 KiB, else 431).
MAX_HEADERS = 32
MAX_HEADER_FIELD_BYTES = 4096 + 128  # name and value


def serve(settings: TrackerSettings) -> None:
    configure_logging(settings.log_level)
    if settings.workers == 1:
        run_worker(settings, reuse_port=False)
    else:
        Supervisor(settings).run()


def run_worker(
    settings: TrackerSettings,
    reuse_port: bool,
    slot: WorkerSlot | None = None,
    watch: ParentWatch | None = None,
) -> None:
    configure_logging(settings.log_level)
    shared: list[SharedMetrics] = []  # the worker's, once its app exists

    async def make_app() -> web.Application:
        app = create_app(settings)
        if slot is not None:
            metrics = app[CORE].metrics
            metrics.shared = SharedMetrics(metrics.registry, slot)
            app.cleanup_ctx.append(metrics.shared.lifecycle)
            shared.append(metrics.shared)
        if watch is not None:
            watch.install(app)
        return app

    log.info(
        "tracker starting",
        extra={"host": settings.host, "port": settings.port, "instance": settings.instance_id},
    )
    run_app(
        make_app(),
        Address(settings.host, settings.port, reuse_port),
        uvloop.new_event_loop(),
        access_log=None,
        shutdown_timeout=5.0,
        handle_signals=True,
        max_headers=MAX_HEADERS,  # passed on to every RequestHandler
        max_field_size=MAX_HEADER_FIELD_BYTES,
    )
    for metrics in shared:
        metrics.save_final()  # after the drain, whose counts it holds
    log.info("tracker stopped", extra={"instance": settings.instance_id})


def _worker_main(settings: TrackerSettings, slot: WorkerSlot, supervisor: int) -> None:
    watch = ParentWatch.arm(supervisor)  # first: from here on its death is signalled
    if watch.gone():  # it died before: no signal will come, and nothing has started yet
        configure_logging(settings.log_level)
        watch.log_gone()
        return
    run_worker(settings, reuse_port=True, slot=slot, watch=watch)


class Supervisor:
    def __init__(self, settings: TrackerSettings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[BaseProcess | None] = [None] * settings.workers
        self._slots: list[WorkerSlot | None] = [None] * settings.workers
        self._starts = itertools.count()
        self._home = MetricsHome()
        self._stopping = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("starting tracker workers", extra={"workers": self._settings.workers})
        self._snapshots = self._open_snapshots()
        try:
            while not self._stopping:
                for index, worker in enumerate(self._workers):
                    if worker is None or not worker.is_alive():
                        self._workers[index] = self._start(index, worker)
                time.sleep(0.2)
            self._shutdown()
        finally:
            self._home.close()

    def _open_snapshots(self) -> SnapshotDirectory:
        try:
            return SnapshotDirectory(self._home.open())
        except OSError as exc:
            raise SystemExit(
                "tracker: TRACKER_WORKERS > 1 needs a writable temporary directory (TMPDIR)"
                f" for the workers' metrics: {exc}"
            ) from None

    def _start(self, index: int, previous: BaseProcess | None) -> BaseProcess:
        if previous is not None:
            log.error(
                "tracker worker died, restarting",
                extra={"worker": index, "exitcode": previous.exitcode},
            )
            self._retire(index)
            time.sleep(RESTART_DELAY)
        settings = dataclasses.replace(
            self._settings, instance_id=f"{self._settings.instance_id}-w{index}"
        )
        slot = WorkerSlot(self._snapshots.path, f"w{index}-{next(self._starts)}")
        self._slots[index] = slot
        # Always from the main thread (run -> _start): the kernel's parent-death signal follows
        # the thread that started the worker, and this one lives as long as the supervisor.
        process = self._context.Process(
            target=_worker_main, args=(settings, slot, os.getpid()), name=f"tracker-worker-{index}"
        )
        process.start()
        return process

    def _retire(self, index: int) -> None:
        """The dead worker's counts into the retired ones: later sums still hold them."""
        slot = self._slots[index]
        if slot is None:
            return
        try:
            self._snapshots.retire(slot.name)
        except OSError as exc:
            log.error("cannot fold a dead worker's metrics", extra={"error": str(exc)})

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
