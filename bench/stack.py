"""The processes a benchmark run needs, all on free loopback ports and stopped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from bench.demo_programs import DEMO_PROGRAMS
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
    """redis-server, kinesalite and moto server, and the env to reach them.

    Every tracker started through `process` gets a SPILL_DIR of its own (its on-disk event log)
    in a temporary directory, removed with the stack: never the repository's working directory,
    and never a directory another tracker of the bench would adopt a log from.
    """

    env: dict[str, str] = field(default_factory=dict)
    redis: ManagedProcess | None = None  # whose CPU a case may count (duplicate clicks)
    kinesis: ManagedProcess | None = None
    _stack: ExitStack = field(default_factory=ExitStack)
    _spill_root: Path | None = None

    def __enter__(self) -> BenchStack:
        self._spill_root = Path(tempfile.mkdtemp(prefix="adtracker-bench-"))
        # Registered first, so it runs last: after every process of the stack has stopped.
        self._stack.callback(shutil.rmtree, self._spill_root, ignore_errors=True)
        self.redis = self._keep(redis_server(free_port()))
        self.kinesis = self._keep(kinesalite(free_port()))
        dynamodb = self._keep(moto_server(free_port()))
        self.env = {
            **os.environ,
            **emulator_env(self.redis.port, self.kinesis.port, dynamodb.port),
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

    def spill_dir(self) -> Path:
        """A new, empty directory for one tracker's on-disk event log, removed with the stack."""
        assert self._spill_root is not None, "the stack is not started"
        return Path(tempfile.mkdtemp(prefix="spill-", dir=self._spill_root))

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
        """A long-running process (tracker, consumer, baseline) that listens on `port`. A tracker
        gets its own SPILL_DIR unless `extra` names one."""
        env = {**self.env, **(extra or {})}
        if argv[:1] == ["tracker"] and "SPILL_DIR" not in (extra or {}):
            env["SPILL_DIR"] = str(self.spill_dir())
        return ManagedProcess(name, [sys.executable, "-m", *argv], port, env=env)

    def tracker(self, extra: dict[str, str] | None = None, name: str = "tracker") -> ManagedProcess:
        """`tracker serve` on a free port, with the stack's settings and `extra`."""
        port = free_port()
        return self.process(
            name, ["tracker", "serve"], port, {"TRACKER_PORT": str(port), **(extra or {})}
        )

    def events_consumer(
        self, extra: dict[str, str] | None = None, name: str = "consumers events"
    ) -> ManagedProcess:
        """`consumers events` with its metrics on a free port, polling every 200 ms."""
        port = free_port()
        settings = {
            "CONSUMER_METRICS_PORT": str(port),
            "CONSUMER_METRICS_HOST": "127.0.0.1",
            "CONSUMER_POLL_MS": "200",
            **(extra or {}),
        }
        return self.process(name, ["consumers", "events"], port, settings)


def pid_of(process: ManagedProcess) -> int:
    """The pid of a started process."""
    assert process.process is not None, f"{process.name} is not started"
    return process.process.pid


def origin(process: ManagedProcess) -> str:
    """Where a process of the stack listens."""
    return f"http://127.0.0.1:{process.port}"


def metrics_url(process: ManagedProcess) -> str:
    """A tracker's or a consumer's /metrics."""
    return f"{origin(process)}/metrics"


@contextmanager
def demo_stack(consumer_settings: dict[str, str] | None = None) -> Iterator[BenchStack]:
    """A BenchStack with the consumers' tables and stream made (`consumer_settings` for
    `consumers init`) and the demo programs loaded."""
    with BenchStack() as stack:
        stack.command("consumers", "init", extra=consumer_settings)
        stack.command("tracker", "programs", "load", str(DEMO_PROGRAMS))
        yield stack


@contextmanager
def canned_kinesis(stack: BenchStack) -> Iterator[dict[str, str]]:
    """The canned Kinesis endpoint (bench/canned_kinesis.py), and the setting that points at it."""
    port = free_port()
    canned = stack.process("canned", ["bench.canned_kinesis", str(port)], port)
    canned.start()
    try:
        yield {"AWS_ENDPOINT_URL_KINESIS": f"http://127.0.0.1:{port}"}
    finally:
        canned.stop()


async def scan_pages(env: Mapping[str, str], scan: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Every page of one DynamoDB Scan (`scan`: its arguments) of the bench stack's moto."""
    async with get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    ) as dynamodb:
        kwargs = dict(scan)
        while True:
            page: dict[str, Any] = dict(await dynamodb.scan(**kwargs))
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
