"""Consumer workers as real processes (`consumers events|programs|lake`), for the tests that
kill, replace and count them; the `workers` fixture (tests/conftest.py) kills what is left."""

from __future__ import annotations

import os
import sys

from tracker.devstack.processes import ManagedProcess, free_port


class Workers:
    """Starts `consumers events|programs|lake` processes; kills whatever is left at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[ManagedProcess] = []

    def start(self, worker_id: str, kind: str = "events") -> ManagedProcess:
        port = free_port()
        env = {
            **os.environ,
            **self.env,
            "CONSUMER_WORKER_ID": worker_id,
            "CONSUMER_METRICS_PORT": str(port),
            "CONSUMER_METRICS_HOST": "127.0.0.1",
        }
        process = ManagedProcess(
            worker_id, [sys.executable, "-m", "consumers", kind], port, env=env
        )
        self.started.append(process.start())
        return process

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()
