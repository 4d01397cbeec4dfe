"""The processes a benchmark run needs, all on free loopback ports and stopped at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field

from tracker.devstack.processes import (
    ManagedProcess,
    emulator_env,
    free_port,
    kinesalite,
    moto_server,
    redis_server,
)


@dataclass
class BenchStack:
    """redis-server, kinesalite and moto server, and the env to reach them."""

    env: dict[str, str] = field(default_factory=dict)
    _stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> BenchStack:
        redis = self._keep(redis_server(free_port()))
        kinesis = self._keep(kinesalite(free_port()))
        dynamodb = self._keep(moto_server(free_port()))
        self.env = {
            **os.environ,
            **emulator_env(redis.port, kinesis.port, dynamodb.port),
            "LOG_LEVEL": "WARNING",
            "TRACKER_HOST": "127.0.0.1",
        }
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _keep(self, process: ManagedProcess) -> ManagedProcess:
        process.start()
        self._stack.callback(process.stop)
        return process

    def command(self, module: str, *args: str, extra: dict[str, str] | None = None) -> None:
        """Run `python -m module args` to completion with the stack's settings."""
        subprocess.run(
            [sys.executable, "-m", module, *args],
            env={**self.env, **(extra or {})},
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def process(
        self, name: str, argv: list[str], port: int, extra: dict[str, str] | None = None
    ) -> ManagedProcess:
        """A long-running process (tracker, consumer, baseline) that listens on `port`."""
        env = {**self.env, **(extra or {})}
        return ManagedProcess(name, [sys.executable, "-m", *argv], port, env=env)
