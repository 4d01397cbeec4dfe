"""Fixtures: real redis-server, kinesalite and moto server on free loopback ports."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings as hypothesis_settings

from tests.support import hang_report
from tests.support.kinesis import create_stream
from tests.support.lambda_runtime_api import RuntimeApi
from tests.support.tcp_proxy import PartitionProxy
from tests.support.waiting import wait_until
from tests.support.workers import Workers
from tracker.app import CORE, create_app
from tracker.devstack.processes import (
    ManagedProcess,
    free_port,
    kinesalite,
    moto_server,
    redis_server,
)
from tracker.privacy.daily_secret import utc_day
from tracker.settings import TrackerSettings

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

# Property tests judge correctness, not speed: a slow CI machine must not fail them on time.
hypothesis_settings.register_profile("project", deadline=None)
hypothesis_settings.load_profile("project")

Client = TestClient[web.Request, web.Application]
StartTracker = Callable[..., Awaitable[Client]]


def pytest_sessionstart(session: pytest.Session) -> None:
    hang_report.forget_reports()


# pytest-timeout's own hooks, around setup, call and teardown: its timer still fires; this only
# prints what the test's tasks were waiting on just before it does.
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    if settings.timeout:
        hang_report.watch(item.nodeid, float(settings.timeout))


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    hang_report.stop_watching(item.nodeid)


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a developer's AWS profile or endpoints leak into a test."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="session")
def kinesalite_url() -> Iterator[str]:
    process = kinesalite(free_port()).start()
    yield f"http://127.0.0.1:{process.port}"
    process.stop()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    process = moto_server(free_port()).start()
    yield f"http://127.0.0.1:{process.port}"
    process.stop()


@pytest.fixture
def redis_proc() -> Iterator[ManagedProcess]:
    process = redis_server(free_port()).start()
    yield process
    process.kill()


@pytest.fixture
def redis_url(redis_proc: ManagedProcess) -> str:
    return f"redis://127.0.0.1:{redis_proc.port}/0"


@pytest.fixture
async def event_stream(kinesalite_url: str) -> str:
    return await create_stream(kinesalite_url, shards=2)


@pytest.fixture
async def sqs(moto_url: str) -> AsyncIterator[SQSClient]:
    """An SQS client on the moto server (Lambda's on-failure queues)."""
    async with get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


@pytest.fixture
async def partition(kinesalite_url: str) -> AsyncIterator[PartitionProxy]:
    """A proxy in front of kinesalite that a test can cut off (a network partition)."""
    upstream = urlsplit(kinesalite_url)
    assert upstream.hostname is not None
    assert upstream.port is not None
    proxy = await PartitionProxy(upstream.hostname, upstream.port).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def runtime_api() -> AsyncIterator[RuntimeApi]:
    """A Lambda Runtime API stand-in for `python -m awslambdaric` to poll."""
    api = await RuntimeApi().start()
    yield api
    await api.close()


@pytest.fixture
def tracker_env(
    redis_url: str, kinesalite_url: str, event_stream: str, tmp_path: Path
) -> dict[str, str]:
    """Settings for a tracker on the test's own Redis, stream and spill directory."""
    return {
        "SPILL_DIR": str(tmp_path / "spill"),
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL_KINESIS": kinesalite_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EVENT_STREAM": event_stream,
        "PROGRAM_CHANNEL": "program-updates",
        "SHIP_LINGER_MS": "20",
        "LOG_LEVEL": "WARNING",
    }


async def with_visitor_secret(client: Client) -> Client:
    """The client, once its tracker holds the visitor secret of its clock's day (asked for now,
    as a new day's first request would)."""
    core = client.app[CORE]
    core.secrets.fetch_soon()
    await wait_until(
        lambda: core.secrets.for_day(utc_day(core.clock())) is not None, what="visitor secret"
    )
    return client


@pytest.fixture
async def start_tracker(tracker_env: dict[str, str]) -> AsyncIterator[StartTracker]:
    """Start an in-process tracker app (real Redis, real kinesalite); settings can be overridden.

    It returns once the push subscription is live, as /readyz would say. `clock` replaces the
    epoch clock of its requests and its daily visitor secrets.
    """
    clients: list[Client] = []

    async def start(clock: Callable[[], float] = time.time, **overrides: str) -> Client:
        settings = TrackerSettings.from_env({**tracker_env, **overrides})
        app = create_app(settings, clock=clock)
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        core = client.app[CORE]
        await wait_until(
            lambda: (
                core.subscriber.live
                and core.metrics.registry.get_sample_value("tracker_redis_up") == 1
            ),
            what="tracker ready",
        )
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[Workers]:
    """Consumer worker processes on the settings of the test module's own `env` fixture."""
    pool = Workers(env)
    yield pool
    pool.kill_all()
