"""The command line as users meet it: real processes, real Redis and emulators."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis
from aiobotocore.session import get_session

from tests.support.consumers import scan_table
from tests.support.kinesis import create_stream, read_records, wait_for_events
from tests.support.programs import STANDARD, program, write_programs
from tests.support.tracker_process import tracker_process
from tracker.devstack.processes import free_port, wait_for_port


def run(
    argv: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["tracker", "serve"], "TRACKER_PORT", "eighty"),
        (["tracker", "serve"], "REDIS_URL", "ftp://nowhere"),
        (["tracker", "serve"], "CACHE_TTL_SECONDS", "-1"),
        (["tracker", "serve"], "CLICK_FALLBACK_URL", "javascript:alert(1)"),
        (["tracker", "programs", "load", "x.json"], "AWS_ENDPOINT_URL", "not a url"),
        (["consumers", "init"], "EVENT_STREAM_SHARDS", "0"),
    ],
)
def test_bad_setting_stops_startup_with_one_line_naming_it(
    command: list[str], variable: str, value: str
) -> None:
    result = run(command, {variable: value}, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]


async def test_programs_load_writes_redis_and_publishes(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    path.write_text(json.dumps([program("a"), program("b", valid=False)]))
    listener = redis.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    await pubsub.subscribe("program-updates")
    result = await asyncio.to_thread(
        run, ["tracker", "programs", "load", str(path)], {"REDIS_URL": redis_url}
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["applied"] == 2
    assert await listener.hgetall("program:b") == {
        k.encode(): v.encode()
        for k, v in {
            "program_id": "b",
            "program_name": "Program b",
            "customer_id": "42",
            "customer_name": "Customer 42",
            "checksum": "sum-b",
            "valid": "false",
            "version": "1",
            "landing_url": "https://example.com/b",
        }.items()
    }
    published = []
    for _ in range(10):  # the first read returns the subscribe confirmation
        message = await pubsub.get_message(timeout=2)
        if message is not None and message["type"] == "message":
            published.append(json.loads(message["data"])["program_id"])
        if len(published) == 2:
            break
    assert published == ["a", "b"]
    again = await asyncio.to_thread(
        run, ["tracker", "programs", "load", str(path)], {"REDIS_URL": redis_url}
    )
    assert json.loads(again.stdout) == {
        **json.loads(again.stdout),
        "applied": 0,
        "skipped_not_newer": 2,
    }
    await pubsub.aclose()
    await listener.aclose()


def test_programs_load_rejects_a_bad_file_before_writing(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    path.write_text(json.dumps([program("fine"), {**program("bad"), "valid": "yes"}]))
    result = run(["tracker", "programs", "load", str(path)], {"REDIS_URL": redis_url})
    assert result.returncode == 1
    assert "entry 1" in result.stderr
    assert "valid" in result.stderr


async def test_programs_publish_puts_them_on_the_program_stream(
    kinesalite_url: str, tmp_path: Path
) -> None:
    stream = await create_stream(kinesalite_url)
    path = tmp_path / "programs.json"
    path.write_text(json.dumps([program("a"), {"program_id": "b", "deleted": True, "version": 3}]))
    env = {
        "AWS_ENDPOINT_URL": kinesalite_url,
        "PROGRAM_STREAM": stream,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = await asyncio.to_thread(run, ["tracker", "programs", "publish", str(path)], env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(data) for data in await read_records(kinesalite_url, stream)]
    assert records == [program("a"), {"program_id": "b", "deleted": True, "version": 3}]


async def test_consumers_init_creates_streams_and_tables_idempotently(
    kinesalite_url: str, moto_url: str, tmp_path: Path
) -> None:
    suffix = os.urandom(4).hex()
    env = {
        "AWS_ENDPOINT_URL_KINESIS": kinesalite_url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "EVENT_STREAM": f"events-{suffix}",
        "PROGRAM_STREAM": f"programs-{suffix}",
        "EVENTS_TABLE": f"events-{suffix}",
        "DEAD_LETTER_TABLE": f"dead-{suffix}",
        "LEASE_TABLE": f"leases-{suffix}",
        "PRIVACY_TABLE": f"privacy-{suffix}",
        "EVENT_STREAM_SHARDS": "3",
        "LAKE_DIR": str(tmp_path / "lake"),
    }
    first = await asyncio.to_thread(run, ["consumers", "init"], env)
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout.strip().splitlines()[-1])
    assert set(created.values()) == {"init", "created"}
    assert created["lake:adtracker.events"] == "created"
    assert (tmp_path / "lake" / "catalog.db").is_file()
    second = await asyncio.to_thread(run, ["consumers", "init"], env)
    assert set(json.loads(second.stdout.strip().splitlines()[-1]).values()) == {"init", "exists"}
    session = get_session()
    async with session.create_client(
        "kinesis", region_name="us-east-1", endpoint_url=kinesalite_url
    ) as kinesis:
        shards = await kinesis.list_shards(StreamName=f"events-{suffix}")
        assert len(shards["Shards"]) == 3
    async with session.create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as dynamodb:
        table = (await dynamodb.describe_table(TableName=f"events-{suffix}"))["Table"]
        assert [k["AttributeName"] for k in table["KeySchema"]] == ["program_bucket", "event_key"]
        ttl = await dynamodb.describe_time_to_live(TableName=f"events-{suffix}")
        assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


async def test_two_workers_share_the_port_and_both_drain(
    tracker_env: dict[str, str], redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    env = {**tracker_env, "TRACKER_WORKERS": "2", "SHIP_LINGER_MS": "5000", "LOG_LEVEL": "INFO"}
    async with tracker_process(env) as tracker:
        await asyncio.sleep(1.0)  # the second worker may bind a moment after the first
        for _ in range(100):
            # A new connection per request lets the kernel spread them over both workers.
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{tracker.base_url}/v1/pixel?program=live") as response,
            ):
                assert response.status == 200
        returncode, output = await tracker.terminate(timeout=40)
    assert returncode == 0, output.decode()
    assert output.count(b'"msg": "events drained"') == 2, output.decode()
    events = await wait_for_events(kinesalite_url, event_stream, 100, timeout=5)
    assert len({e.message_id for e in events}) == len(events) == 100
    assert {e.tracker_instance.rsplit("-", 1)[-1] for e in events} == {"w0", "w1"}


async def test_local_stack_serves_the_demo_programs_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {
        name: str(free_port())
        for name in (
            "LOCAL_REDIS_PORT",
            "LOCAL_KINESIS_PORT",
            "LOCAL_DYNAMODB_PORT",
            "TRACKER_PORT",
            "REPORTS_PORT",
            "LOCAL_EVENTS_METRICS_PORT",
            "LOCAL_PROGRAMS_METRICS_PORT",
            "LOCAL_LAKE_METRICS_PORT",
        )
    }
    env = {**os.environ, **ports, "LOG_LEVEL": "WARNING", "LOCAL_STACK_DIR": str(tmp_path)}
    env["LOCAL_LAKE_DIR"] = str(tmp_path / "lake")
    env["LOCAL_DEMO_TRAFFIC"] = "0"  # the events below are counted exactly
    process = subprocess.Popen(  # noqa: ASYNC220 (its output is read in a thread below)
        [sys.executable, "-m", "tracker.devstack"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output: list[bytes] = []
    reader = asyncio.create_task(asyncio.to_thread(_read_all, process, output))
    base = f"http://127.0.0.1:{ports['TRACKER_PORT']}"
    try:
        key = await _printed_report_key(output, process, timeout=90)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/event/demo-shoes") as response:
                assert response.status == 200
                assert (await response.json())["valid"] is True
            async with session.get(
                f"{base}/v1/click?program=demo-paused", allow_redirects=False
            ) as response:
                assert response.status == 404
        events = await wait_for_events(
            f"http://127.0.0.1:{ports['LOCAL_KINESIS_PORT']}", "tracking-events", 2
        )
        assert sorted(e.programid for e in events) == ["demo-paused", "demo-shoes"]
        # ... and the consumers put them in DynamoDB.
        dynamodb = f"http://127.0.0.1:{ports['LOCAL_DYNAMODB_PORT']}"
        for _ in range(100):
            items = await scan_table(dynamodb, "tracking-events")
            if len(items) == 2:
                break
            await asyncio.sleep(0.2)
        assert sorted(item["program_id"]["S"] for item in items) == ["demo-paused", "demo-shoes"]
        # The reports service, with the key the stack made for the demo program's customer
        # (1001: demo-shoes and demo-paused), counts the event of demo-shoes.
        await _check_reports(f"http://127.0.0.1:{ports['REPORTS_PORT']}", key)
        # ... and the lake worker commits them (every 5 s under make run).
        await _check_lake(tmp_path / "lake", ["demo-paused", "demo-shoes"])
        stack_env = (tmp_path / "env").read_text()
        assert stack_env.count("=") == 7
        assert "USER_ID_KEY=" in stack_env  # `consumers privacy` needs the tracker's key
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.to_thread(process.wait), 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await reader
    text = b"".join(output).decode()
    assert process.returncode == 0, text
    assert "[stack] stopping reports" in text
    assert "[stack] stopped" in text
    for port in ports.values():
        with pytest.raises(TimeoutError):
            wait_for_port(int(port), 0.3)


async def _check_lake(lake_dir: Path, programs: list[str]) -> None:
    """`consumers lake query` on the stack's lake shows each event once."""
    sql = "SELECT programid FROM events ORDER BY programid"
    for _ in range(60):
        result = await asyncio.to_thread(
            run, ["consumers", "lake", "query", sql], {"LAKE_DIR": str(lake_dir)}
        )
        assert result.returncode == 0, result.stderr
        if [row["programid"] for row in json.loads(result.stdout)] == programs:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the lake holds {result.stdout}, wanted {programs}")


def _read_all(process: subprocess.Popen[bytes], output: list[bytes]) -> None:
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:
            output.append(line)


async def _printed_report_key(
    output: list[bytes], process: subprocess.Popen[bytes], timeout: float
) -> str:
    """The demo report key `make run` prints once everything is up (a line of its own)."""
    for _ in range(int(timeout / 0.2)):
        for line in list(output):
            if line.strip().startswith(b"adt_"):
                return line.strip().decode()
        assert process.poll() is None, b"".join(output).decode()
        await asyncio.sleep(0.2)
    raise AssertionError(f"no report key printed: {b''.join(output).decode()}")


async def _check_reports(base: str, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{base}/v1/programs") as response:
            assert response.status == 401
        async with session.get(f"{base}/v1/programs", headers=auth) as response:
            assert response.status == 200
            programs = await response.json()
        assert sorted(p["program_id"] for p in programs) == ["demo-paused", "demo-shoes"]
        # Waits on the rollups (consumers events writes them with the events' items).
        totals: dict[str, object] = {}
        for _ in range(100):
            url = f"{base}/v1/reports/demo-shoes?granularity=day"
            async with session.get(url, headers=auth) as response:
                assert response.status == 200
                totals = (await response.json())["totals"]
            if totals.get("events") == 1:
                break
            await asyncio.sleep(0.2)
        assert (totals.get("impressions"), totals.get("clicks"), totals.get("events")) == (0, 0, 1)


def test_local_stack_without_redis_server_says_how_to_install_it(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "LOCAL_STACK_DIR": str(tmp_path)}  # nothing to find there
    result = run(["tracker.devstack"], env, timeout=30)
    assert result.returncode == 3
    assert "redis-server is not on PATH" in result.stderr
    assert "apt-get install redis-server" in result.stderr
