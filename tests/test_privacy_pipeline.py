"""Privacy through the whole pipeline, with real processes: `tracker serve` -> kinesalite ->
`consumers events` -> moto's DynamoDB, then `consumers privacy export|erase` as commands.

Distinctive personal values go in; the stored items, the processes' output at DEBUG and the
tracker's /metrics are searched for them afterwards, raw.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.consumers import consumer_env, provisioned, run_privacy, scan_table
from tests.support.programs import program, write_programs
from tests.support.tcf_strings import tc_string
from tests.support.tracker_process import TrackerProcess, tracker_process
from tracker.devstack.processes import ManagedProcess, free_port
from tracker.privacy.keys import user_key

pytestmark = pytest.mark.timeout(180)

VENDOR = 755
USER_ID_KEY = "pipeline-user-id-key-0123456789abcdef"
ALICE, BOB, CAROL = "alice-probe-7f3a@example.com", "bob-probe-19c2", "carol-probe-5d81"
ADDRESS = "203.0.113.77"
AGENT = "AllowedProbeAgent/3.1 (x-distinct-ua)"
DENIED_AGENT = "DeniedProbeAgent/9.9 (y-distinct-ua)"
REFERER_QUERY = "session=ref-probe-token-5150"
REFERER = f"https://publisher.example/story/12?{REFERER_QUERY}#frag-probe"
GRANTED = tc_string(purposes={1, 7}, vendors={VENDOR})
REFUSED = tc_string(purposes={1, 2}, vendors={VENDOR, 9})
# What must never be stored or logged. (The /24 of ADDRESS is stored for allowed events.)
NEVER = [ADDRESS, DENIED_AGENT, REFERER_QUERY, "frag-probe", ALICE, BOB, CAROL, GRANTED, REFUSED]


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    environment = {
        **consumer_env(kinesalite_url, moto_url, redis_url, shards=2),
        "USER_ID_KEY": USER_ID_KEY,
        "TCF_VENDOR_ID": str(VENDOR),
        "LOG_LEVEL": "DEBUG",
        "SUPPRESSION_CACHE_SECONDS": "0.5",
        "ERASE_MARGIN_SECONDS": "1",
    }
    await provisioned(environment)
    await write_programs(redis_url, [program("shoes", customer_id=42)])
    return environment


@pytest.fixture
def consumer(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[ManagedProcess, Path]]:
    port = free_port()
    output = tmp_path / "consumer.log"
    log_file = output.open("wb")
    process = ManagedProcess(
        "events-consumer",
        [sys.executable, "-m", "consumers", "events"],
        port,
        env={
            **os.environ,
            **env,
            "CONSUMER_METRICS_PORT": str(port),
            "CONSUMER_METRICS_HOST": "127.0.0.1",
        },
        output=log_file,
    )
    process.start()
    yield process, output
    process.kill()
    log_file.close()


@pytest.fixture
async def tracker(env: dict[str, str], tmp_path: Path) -> AsyncIterator[TrackerProcess]:
    settings = {**env, "SPILL_DIR": str(tmp_path / "spill"), "TRUST_FORWARDED_FOR": "true"}
    settings["SHIP_LINGER_MS"] = "10"
    async with tracker_process(settings) as process:
        yield process


async def pixel(
    tracker: TrackerProcess, query: dict[str, str], headers: dict[str, str] | None = None
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{tracker.base_url}/v1/pixel",
            params={"program": "shoes", **query},
            headers={
                "User-Agent": AGENT,
                "Referer": REFERER,
                "X-Forwarded-For": ADDRESS,
                **(headers or {}),
            },
        ) as response,
    ):
        assert response.status == 200


async def items_by_tag(moto_url: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    items = await scan_table(moto_url, env["EVENTS_TABLE"])
    return {item["params"]["M"]["tag"]["S"]: item for item in items}


async def wait_for_tags(
    moto_url: str, env: dict[str, str], tags: set[str], timeout: float = 60
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while not tags <= set(found := await items_by_tag(moto_url, env)):
        assert time.monotonic() < deadline, f"stored {sorted(found)}, wanted {sorted(tags)}"
        await asyncio.sleep(0.3)
    return found


async def privacy(env: dict[str, str], operation: str, user_id: str) -> tuple[str, str]:
    completed = await asyncio.to_thread(run_privacy, env, operation, user_id)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout, completed.stderr


async def test_consent_shapes_what_is_stored_and_erasure_holds(
    env: dict[str, str],
    tracker: TrackerProcess,
    consumer: tuple[ManagedProcess, Path],
    moto_url: str,
) -> None:
    await pixel(tracker, {"tag": "a1", "uid": ALICE})
    await pixel(tracker, {"tag": "a2", "uid": ALICE, "gdpr": "1", "gdpr_consent": GRANTED})
    await pixel(tracker, {"tag": "b1", "uid": BOB})
    denied = {"User-Agent": DENIED_AGENT}
    await pixel(tracker, {"tag": "c1", "uid": CAROL, "gdpr": "1", "gdpr_consent": REFUSED}, denied)
    await pixel(tracker, {"tag": "c2", "uid": CAROL}, {**denied, "Sec-GPC": "1"})
    stored = await wait_for_tags(moto_url, env, {"a1", "a2", "b1", "c1", "c2"})

    alice_key = user_key(USER_ID_KEY.encode(), ALICE)
    assert stored["a1"]["user_key"]["S"] == alice_key
    assert stored["a2"]["consent"]["S"] == "CONSENT_GRANTED"
    assert stored["a1"]["consent"]["S"] == "CONSENT_NOT_APPLICABLE"
    assert stored["a1"]["client_ip_anonymized"]["S"] == "203.0.113.0"
    assert stored["a1"]["referer"]["S"] == "https://publisher.example/story/12"
    assert len(stored["a1"]["visitor_id"]["S"]) == 32
    for tag in ("c1", "c2"):
        item = stored[tag]
        assert item["consent"]["S"] == (
            "CONSENT_DENIED" if tag == "c1" else "CONSENT_NOT_APPLICABLE"
        )
        assert not {"user_key", "visitor_id", "user_agent", "client_ip_anonymized"} & set(item)
        assert item["referer"]["S"] == "https://publisher.example"
    assert stored["c2"]["gpc"]["BOOL"] is True
    raw_items = json.dumps(list(stored.values()))
    assert [value for value in NEVER if value in raw_items] == []

    out, err = await privacy(env, "export", ALICE)
    exported = [json.loads(line) for line in out.splitlines()]
    assert sorted(e["params"]["tag"] for e in exported) == ["a1", "a2"]
    out, _ = await privacy(env, "erase", ALICE)
    assert json.loads(out) == {"erased": 2}
    after = await items_by_tag(moto_url, env)
    assert {"a1", "a2"}.isdisjoint(after)

    await pixel(tracker, {"tag": "a3", "uid": ALICE})  # arrives after the erasure
    await pixel(tracker, {"tag": "b2", "uid": BOB})
    process, consumer_log = consumer
    await wait_for_tags(moto_url, env, {"b2"})
    await wait_suppressed(process.port, 1)
    assert "a3" not in await items_by_tag(moto_url, env)

    privacy_table = json.dumps(await scan_table(moto_url, env["PRIVACY_TABLE"]))
    assert alice_key in privacy_table
    assert ALICE not in privacy_table

    # Nothing personal in any output at DEBUG, nor in the tracker's metrics.
    async with aiohttp.ClientSession() as session:
        metrics = await (await session.get(f"{tracker.base_url}/metrics")).text()
    code, tracker_output = await tracker.terminate(30)
    assert code == 0
    outputs = {
        "tracker": tracker_output.decode(errors="replace"),
        "consumer": consumer_log.read_text(errors="replace"),
        "metrics": metrics,
        "privacy commands": err,
    }
    assert "DEBUG" in outputs["tracker"] + outputs["consumer"]  # the level was really on
    leaks = {(name, v) for name, text in outputs.items() for v in [*NEVER, AGENT] if v in text}
    assert leaks == set()


async def wait_suppressed(port: int, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            text = await (await session.get(f"http://127.0.0.1:{port}/metrics")).text()
            values = [
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("consumer_events_suppressed_total")
            ]
            if sum(values) >= count:
                return
            assert time.monotonic() < deadline, "no suppressed event counted"
            await asyncio.sleep(0.3)
