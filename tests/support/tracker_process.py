"""`tracker serve` as a real process on a free port, for tests of signals, workers and kills.

Its output goes to a file, not a pipe: a pipe nobody reads would stall a chatty tracker. It runs
in a session of its own, so that `kill_all` reaches the supervisor and every worker at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO

import aiohttp

from tracker.devstack.processes import free_port, wait_for_port


@dataclass
class TrackerProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> bytes:
        self.log.seek(0)
        return self.log.read()

    async def terminate(self, timeout: float) -> tuple[int, bytes]:
        """SIGTERM, then wait for the exit: (exit status, everything it printed)."""
        self.process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(self.process.wait, timeout)
        return returncode, self.output()

    def kill_all(self) -> None:
        """SIGKILL the tracker and every worker process it started, at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    async def metric(self, name: str, labels: str = "") -> float:
        """One sample from /metrics (of whichever worker answers)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.base_url}/metrics") as response,
        ):
            text = await response.text()
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{wanted} is not in /metrics")


@asynccontextmanager
async def tracker_process(
    env: dict[str, str], start_timeout: float = 30.0, port: int | None = None
) -> AsyncIterator[TrackerProcess]:
    port = port or free_port()
    full_env = {**os.environ, **env, "TRACKER_HOST": "127.0.0.1", "TRACKER_PORT": str(port)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: ASYNC220 (waited on in a thread)
            [sys.executable, "-m", "tracker", "serve"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await asyncio.to_thread(wait_for_port, port, start_timeout, process)
            yield TrackerProcess(port, process, log)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
