"""`tracker serve` as a real process on a free port, for tests of signals and workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tracker.devstack.processes import free_port, wait_for_port


@dataclass
class TrackerProcess:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def terminate(self, timeout: float) -> tuple[int, bytes]:
        """SIGTERM, then wait for the exit: (exit status, everything it printed)."""
        self.process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(self.process.communicate, timeout=timeout)
        return self.process.returncode, output


@asynccontextmanager
async def tracker_process(
    env: dict[str, str], start_timeout: float = 30.0
) -> AsyncIterator[TrackerProcess]:
    port = free_port()
    full_env = {**os.environ, **env, "TRACKER_HOST": "127.0.0.1", "TRACKER_PORT": str(port)}
    process = subprocess.Popen(  # noqa: ASYNC220 (waited on in a thread)
        [sys.executable, "-m", "tracker", "serve"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(wait_for_port, port, start_timeout, process)
        yield TrackerProcess(port, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
