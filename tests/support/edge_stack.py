"""One real tracker process with its own redis-server and Kinesis stream, for a whole test module.

The conftest fixtures give each test a fresh Redis; fuzzers want one tracker that lives through
hundreds of requests, so this starts the stack once, from a synchronous (module-scoped) fixture,
and drives its async parts on a private event loop that runs only inside this module's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.kinesis import create_stream, read_records
from tests.support.programs import program, write_programs
from tests.support.tracker_process import TrackerProcess, tracker_process
from tracker.devstack.processes import free_port, redis_server

ADMIN_TOKEN = "edge-fuzz-admin-token"
FALLBACK_URL = "https://fallback.example/lost?from=tracker"
# kid:base64 secret (32 bytes).
SIGNING_KEYS = "k1:ZWRnZS1mdXp6LXNpZ25pbmcta2V5LTAxMjM0NTY3ODk="
USER_ID_KEY = "edge-fuzz-user-id-key-0123456789"
TCF_VENDOR_ID = "755"

LANDING_URL = "https://example.com/landing?utm_source=tracker&utm_medium=edge"
# A program whose clicks get a click id: its landing URL already holds the parameter (replaced).
SHOP_LANDING_URL = "https://shop.example/item?adt_click=stale&ref=edge#reviews"
PROGRAMS: list[dict[str, Any]] = [
    program("demo-shoes", customer_id=1001, landing_url=LANDING_URL),
    program(
        "demo-shop",
        customer_id=1004,
        landing_url=SHOP_LANDING_URL,
        click_id_param="adt_click",
        attribution_window_days=14,
    ),
    program("demo-books", customer_id=1002, landing_url=None),
    # Switched off and expired: their landing URLs must never be a click's destination.
    program("demo-paused", valid=False, landing_url="https://example.com/never-paused"),
    program(
        "demo-expired",
        valid_from=1_000,
        valid_until=2_000,
        landing_url="https://example.com/never-expired",
    ),
]
# Every Location header the tracker may send: these, or demo-shop's with a click id (or without
# one, when privacy withholds it).
DESTINATIONS = frozenset({LANDING_URL, FALLBACK_URL, SHOP_LANDING_URL})
CLICK_ID_DESTINATION = re.compile(
    r"https://shop\.example/item\?ref=edge&adt_click=[0-9a-f]{32}#reviews"
)


def is_destination(location: str) -> bool:
    return location in DESTINATIONS or CLICK_ID_DESTINATION.fullmatch(location) is not None


@dataclass
class EdgeStack:
    tracker: TrackerProcess
    redis_url: str
    kinesis_url: str
    stream: str
    runner: asyncio.Runner

    @property
    def port(self) -> int:
        return self.tracker.port

    @property
    def base_url(self) -> str:
        return self.tracker.base_url

    def alive(self) -> bool:
        return self.tracker.process.poll() is None

    def output(self) -> str:
        return self.tracker.output().decode(errors="replace")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """A plain GET (stdlib client, new connection): status and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def metric(self, name: str) -> float:
        return self.runner.run(self.tracker.metric(name))

    def records(self) -> list[bytes]:
        return self.runner.run(read_records(self.kinesis_url, self.stream))

    def shipped_records(self, settle: float = 1.0, timeout: float = 30.0) -> list[bytes]:
        """The stream's records once the tracker has nothing left to ship and the count has not
        moved for `settle` seconds (clicks are recorded after their answer)."""
        deadline = time.monotonic() + timeout
        records = self.records()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            again = self.records()
            if len(again) != len(records):
                records, stable_since = again, time.monotonic()
            elif (
                time.monotonic() - stable_since >= settle
                and self.metric("tracker_ship_buffer_depth") == 0
            ):
                return records
        raise AssertionError(f"the stream kept changing for {timeout}s ({len(records)} records)")

    def wait_for_visitor_secret(self, timeout: float = 15.0) -> None:
        """Until a pixel gets its visitor_id: the day's secret (fetched in the background after
        start-up) is at hand, so the paths that need it (visitor ids, duplicate clicks) run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.metric("tracker_visitor_id_unavailable_total")
            self.get("/v1/pixel?program=demo-books")
            if self.metric("tracker_visitor_id_unavailable_total") == before:
                return
            time.sleep(0.1)
        raise AssertionError(f"no visitor secret after {timeout}s\n{self.output()}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: tuple[int, bytes] | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                last = self.get("/readyz")
                if last[0] == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"tracker not ready after {timeout}s: {last}\n{self.output()}")


@contextlib.contextmanager
def edge_stack(kinesis_url: str, workdir: Path, **overrides: str) -> Iterator[EdgeStack]:
    """Redis with PROGRAMS loaded, a fresh one-shard stream, and `tracker serve` on a free
    port with a click fallback, an admin token, click signing, consent and user-id settings."""
    redis = redis_server(free_port()).start()
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        with asyncio.Runner() as runner:
            stream = runner.run(create_stream(kinesis_url, shards=1))
            runner.run(write_programs(redis_url, PROGRAMS))
            env = {
                "SPILL_DIR": str(workdir / "spill"),
                "REDIS_URL": redis_url,
                "AWS_ENDPOINT_URL_KINESIS": kinesis_url,
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "EVENT_STREAM": stream,
                "PROGRAM_CHANNEL": "program-updates",
                "SHIP_LINGER_MS": "20",
                "LOG_LEVEL": "WARNING",
                "CLICK_FALLBACK_URL": FALLBACK_URL,
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "CLICK_SIGNING_KEYS": SIGNING_KEYS,
                "USER_ID_KEY": USER_ID_KEY,
                "TCF_VENDOR_ID": TCF_VENDOR_ID,
                "TRUST_FORWARDED_FOR": "true",
                **overrides,
            }
            manager = tracker_process(env)
            tracker = runner.run(manager.__aenter__())
            try:
                stack = EdgeStack(tracker, redis_url, kinesis_url, stream, runner)
                stack.wait_ready()
                stack.wait_for_visitor_secret()
                yield stack
            finally:
                runner.run(manager.__aexit__(None, None, None))
    finally:
        redis.kill()
