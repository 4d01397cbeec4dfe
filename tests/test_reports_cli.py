"""The `reports` command as operators run it: keys create|list|revoke and show against moto,
bad settings, and `reports serve` as a real process that stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from tests.support.programs import program, write_programs
from tests.support.report_stack import (
    create_tables,
    dynamodb,
    fresh_tables,
    put_bucket,
    report_env,
    reports_process,
)


@pytest.fixture
async def env(moto_url: str, redis_url: str) -> dict[str, str]:
    tables = fresh_tables()
    async with dynamodb(moto_url) as client:
        await create_tables(client, tables)
        await put_bucket(client, tables.rollups, "live", "2030-03-10T10:15Z", {"impressions": 4})
    return report_env(moto_url, redis_url, tables)


async def reports(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "reports", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_keys_create_list_revoke(env: dict[str, str]) -> None:
    created = await reports(env, "keys", "create", "--customer", "42", "--name", "Dashboard")
    assert created.returncode == 0, created.stderr
    [line] = json_lines(created.stdout)
    assert set(line) == {"key_id", "customer_id", "key"}
    key_id, key = str(line["key_id"]), str(line["key"])
    assert line["customer_id"] == 42
    assert key.startswith(f"adt_{key_id}_")
    await reports(env, "keys", "create", "--customer", "7")

    listed = await reports(env, "keys", "list", "--customer", "42")
    assert listed.returncode == 0, listed.stderr
    [entry] = json_lines(listed.stdout)
    assert entry["key_id"] == key_id
    assert entry["name"] == "Dashboard"
    assert entry["revoked"] is None
    assert key.split("_", 2)[2] not in listed.stdout
    assert "sha256" not in listed.stdout
    assert len(json_lines((await reports(env, "keys", "list")).stdout)) == 2

    revoked = await reports(env, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    [entry] = json_lines((await reports(env, "keys", "list", "--customer", "42")).stdout)
    assert isinstance(entry["revoked"], int)


async def test_revoking_an_unknown_key_fails_with_a_message(env: dict[str, str]) -> None:
    unknown = await reports(env, "keys", "revoke", "0123456789ab")
    assert unknown.returncode == 1
    assert "no key 0123456789ab" in unknown.stderr
    malformed = await reports(env, "keys", "revoke", "not-a-key-id")
    assert malformed.returncode == 2
    assert "12 lowercase hex digits" in malformed.stderr


async def test_a_missing_table_is_one_line_naming_it(env: dict[str, str]) -> None:
    result = await reports({**env, "REPORT_KEYS_TABLE": "no-such-keys"}, "keys", "list")
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "no-such-keys" in line


async def test_a_bad_setting_stops_start_up_naming_it(env: dict[str, str]) -> None:
    result = await reports({**env, "REPORTS_PORT": "eighty"}, "serve")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "REPORTS_PORT" in line


async def test_show_prints_the_rows(env: dict[str, str]) -> None:
    args = ("show", "--program", "live", "--from", "2030-03-10", "--to", "2030-03-10")
    as_csv = await reports(env, *args, "--format", "csv", "--granularity", "hour")
    assert as_csv.returncode == 0, as_csv.stderr
    lines = as_csv.stdout.splitlines()
    assert lines[0].startswith("period,impressions,")
    assert len(lines) == 25
    assert lines[11].startswith("2030-03-10T10:00:00+00:00,4,")
    as_json = await reports(env, *args)
    assert json_lines(as_json.stdout)[0]["impressions"] == 4
    bad = await reports(env, "show", "--program", "live", "--tz", "Nowhere/Else")
    assert bad.returncode == 2
    assert "tz" in bad.stderr


async def get(url: str, key: str | None = None) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_serve_answers_and_stops_cleanly_on_sigterm(
    env: dict[str, str], redis_url: str
) -> None:
    await write_programs(redis_url, [program("live"), program("theirs", customer_id=7)])
    created = await reports(env, "keys", "create", "--customer", "42")
    line = json.loads(created.stdout)
    key = str(line["key"])
    async with reports_process({**env, "LOG_LEVEL": "INFO"}) as served:
        base = served.base_url
        assert await get(f"{base}/healthz") == (200, {"status": "ok"})
        ready: list[int] = []

        async def probe() -> None:
            ready.append((await get(f"{base}/readyz"))[0])

        for _ in range(100):
            await probe()
            if ready[-1] == 200:
                break
            await asyncio.sleep(0.1)
        assert ready[-1] == 200
        status, body = await get(f"{base}/v1/programs", key)
        assert (status, body) == (200, [{"program_id": "live", "program_name": "Program live"}])
        assert (await get(f"{base}/v1/reports/theirs", key))[0] == 404
        await reports(env, "keys", "revoke", str(line["key_id"]))
        await wait_until_refused(f"{base}/v1/programs", key)
        returncode, output = await served.terminate(signal.SIGTERM)
    assert returncode == 0
    assert key.encode() not in output
    records = [json.loads(text) for text in output.decode().splitlines()]  # JSON lines only
    messages = [record["msg"] for record in records]
    assert messages[0] == "reports starting"
    assert messages[-1] == "reports stopped"
    assert all("/v1/" not in json.dumps(record) for record in records)  # no line per request


async def wait_until_refused(url: str, key: str) -> None:
    """A revoked key stops working within the verifier's cache time (5 s)."""
    statuses: list[int] = []

    async def ask() -> None:
        statuses.append((await get(url, key))[0])

    loop = asyncio.get_running_loop()
    started = loop.time()
    await ask()
    while statuses[-1] != 401:
        await asyncio.sleep(0.25)
        await ask()
    assert loop.time() - started < 6.0


async def test_serve_stops_cleanly_on_sigint(env: dict[str, str]) -> None:
    async with reports_process(env) as served:
        assert (await get(f"{served.base_url}/healthz"))[0] == 200
        returncode, output = await served.terminate(signal.SIGINT)
    assert returncode == 0, output
