"""A worker's watch on its supervisor: a worker whose supervisor is gone stops as on SIGTERM.

A supervisor killed by SIGKILL (the OOM killer, `kill -9`) cannot stop its workers. Left alone
they would keep the port and answer with nobody supervising them, beside any supervisor started
after. So each worker stops by itself, through the same SIGTERM the supervisor sends on a clean
stop: aiohttp stops accepting, the shipper drains, the rest goes to the spill log, exit 0.

On Linux the kernel sends that SIGTERM the moment the supervisor dies (prctl PR_SET_PDEATHSIG).
Where there is no such call, the worker's event loop asks once a second whether its parent is
still the supervisor, and raises SIGTERM itself. Neither touches the request path.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys

from aiohttp import web

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0


class ParentWatch:
    """A worker's supervisor (its pid) and how the worker learns of its death."""

    def __init__(self, supervisor: int, kernel_signals: bool) -> None:
        self.supervisor = supervisor
        self.kernel_signals = kernel_signals  # else the worker's loop polls
        self._poller: asyncio.Task[None] | None = None

    @classmethod
    def arm(cls, supervisor: int) -> ParentWatch:
        """First thing in a worker. A supervisor that died before this call is not signalled
        for: the caller checks `gone()` right after, and stops at once if it is. A signal that
        comes before the worker serves stops it before it has answered anything."""
        return cls(supervisor, kernel_signals=set_parent_death_signal(signal.SIGTERM))

    def gone(self) -> bool:
        """A dead parent's children are given to init (or a subreaper): the parent pid changes.
        The kernel does that before it sends the death signal."""
        return os.getppid() != self.supervisor

    def log_gone(self) -> None:
        log.warning(
            "tracker supervisor is gone, the worker stops",
            extra={"supervisor": self.supervisor, "worker_pid": os.getpid()},
        )

    def install(self, app: web.Application) -> None:
        app.on_startup.append(self._start_polling)
        app.on_shutdown.append(self._disarm)

    async def _start_polling(self, app: web.Application) -> None:
        if not self.kernel_signals:
            self._poller = asyncio.create_task(self._poll(), name="parent-watch")

    async def _poll(self) -> None:
        await wait_until_gone(self.supervisor, POLL_SECONDS)
        signal.raise_signal(signal.SIGTERM)  # aiohttp's handler: the graceful stop

    async def _disarm(self, app: web.Application) -> None:
        """The worker is stopping already: a second SIGTERM, when the supervisor dies during the
        drain, would cut the drain short."""
        if self._poller is not None:
            self._poller.cancel()
        if self.kernel_signals:
            set_parent_death_signal(0)
        if self.gone():
            self.log_gone()


async def wait_until_gone(supervisor: int, interval: float) -> None:
    """Returns once the parent is no longer `supervisor`, looking every `interval` seconds. The
    first look is one interval in: the worker has looked as it started, and a SIGTERM before
    aiohttp has started serving would skip the drain (it runs only once serving began)."""
    while True:
        await asyncio.sleep(interval)
        if os.getppid() != supervisor:
            return


def set_parent_death_signal(signum: int) -> bool:
    """prctl(PR_SET_PDEATHSIG): the signal this process gets when its parent dies (0: none).
    False where the call does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    unused = ctypes.c_ulong(0)
    result: int = prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), unused, unused, unused)
    return result == 0
