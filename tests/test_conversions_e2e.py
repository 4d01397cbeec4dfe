"""Conversions end to end with real processes: `tracker serve` answering clicks and conversions,
kinesalite, `consumers events` workers attributing them into moto. Every attribution value;
a click cut off from Kinesis while its conversion arrives through another tracker (the
conversion waits, the shard does not); and a consumer SIGKILLed mid-stream with the stream
then delivered again, after which attributed counts and revenue are exact."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.support.consumers import consumer_env, provisioned, put_records, scan_table
from tests.support.programs import program, write_programs
from tests.support.tcp_proxy import PartitionProxy
from tests.support.tracker_process import tracker_process
from tests.support.workers import Workers
from tests.test_consumer_workers import wait_owners
from tests.test_rollups_exact import copies_of, rewind_checkpoints, wait_checkpoints_past
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
POSTBACK = "curl/8.5.0"
PARAM = "adt_click"
PROGRAMS = [
    program(
        "shop",
        landing_url=f"https://shop.example/landing?ref=ad&{PARAM}=stale#top",
        click_id_param=PARAM,
        attribution_window_days=7,
    ),
    program("other", click_id_param=PARAM),
]
DAY_MS = 86_400_000


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    environment = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    environment["MATCH_WAIT_SECONDS"] = "4"
    await provisioned(environment)
    await write_programs(redis_url, PROGRAMS)
    return environment


class Browser:
    """Requests as distinct people make them (the duplicate-click check keys on the client)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self.base = base_url
        self._people = 0

    async def click(self, program_id: str, agent: str = BROWSER) -> str:
        """The click id the landing URL was given."""
        self._people += 1
        headers = {"User-Agent": f"{agent} person/{self._people}"}
        url = f"{self.base}/v1/click?program={program_id}"
        async with self._session.get(url, headers=headers, allow_redirects=False) as answer:
            assert answer.status == 302
            location = answer.headers["Location"]
        parts = urlsplit(location)
        if program_id == "shop":  # its landing URL's own query and fragment are kept
            assert parts.fragment == "top"
            assert parse_qs(parts.query)["ref"] == ["ad"]
        ids = parse_qs(parts.query)[PARAM]
        assert len(ids) == 1  # the landing URL's own `adt_click=stale` was replaced
        assert ids[0] != "stale"
        return ids[0]

    async def convert(self, query: str, agent: str = BROWSER, **headers: str) -> None:
        url = f"{self.base}/v1/conversion?{query}"
        async with self._session.get(url, headers={"User-Agent": agent, **headers}) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "image/gif"
            await answer.read()

    async def pixel(self, tag: int) -> None:
        url = f"{self.base}/v1/pixel?program=shop&tag={tag}"
        async with self._session.get(url, headers={"User-Agent": BROWSER}) as answer:
            assert answer.status == 200
            await answer.read()


async def conversions(moto_url: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """order_id or the click id -> the stored conversion item (each test makes them unique)."""
    items = await scan_table(moto_url, env["EVENTS_TABLE"])
    found = {}
    for item in items:
        if item["event_type"]["S"] == "CONVERSION":
            name = item.get("order_id", item.get("click_id", item["message_id"]))["S"]
            found[name] = item
    return found


async def rollup_counts(moto_url: str, env: dict[str, str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in await scan_table(moto_url, env["ROLLUP_TABLE"]):
        counts.update({k: int(v["N"]) for k, v in item["counts"]["M"].items()})
    return counts


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.3)


def old_click(program_id: str, days_ago: int, window: int) -> tuple[str, bytes]:
    """A click as a tracker recorded it `days_ago` days ago (a tracker cannot be made to answer
    in the past, so this one record goes on the stream directly)."""
    click_id = os.urandom(16).hex()
    event = pb.TrackingEvent(
        programid=program_id,
        message_id=click_id,
        timestamp_ms=int(time.time() * 1000) - days_ago * DAY_MS,
        event_type=pb.CLICK,
        validation=pb.OK,
        is_valid=True,
        billable=True,
        attribution_window_days=window,
    )
    return click_id, event.SerializeToString()


async def test_every_attribution_value(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str, tmp_path: Any
) -> None:
    workers.start("a")
    stale_id, stale = old_click("shop", days_ago=8, window=7)
    await put_records(kinesalite_url, env["EVENT_STREAM"], [stale])
    tracker_env = {**env, "SPILL_DIR": str(tmp_path / "spill"), "SHIP_LINGER_MS": "20"}
    async with (
        tracker_process(tracker_env) as tracker,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        browser = Browser(session, tracker.base_url)
        good, crawled, gpc, elsewhere = (
            await browser.click("shop"),
            await browser.click("shop", CRAWLER),
            await browser.click("shop"),
            await browser.click("other"),
        )
        await asyncio.sleep(1.5)  # the clicks are stored before their conversions are read
        await browser.convert(f"program=shop&click_id={good}&order_id=A1&value=49.90&currency=EUR")
        await browser.convert(
            f"program=shop&click_id={good}&order_id=A1&value=49.90&currency=EUR", POSTBACK
        )
        await browser.convert(
            f"program=shop&click_id={crawled}&order_id=B1&value=5&currency=EUR", POSTBACK
        )
        await browser.convert("program=shop&order_id=C1&value=1&currency=USD")
        await browser.convert(f"program=shop&click_id={gpc}&order_id=D1", **{"Sec-GPC": "1"})
        await browser.convert(f"program=shop&click_id={elsewhere}&order_id=E1")
        await browser.convert(f"program=shop&click_id={stale_id}&order_id=F1")
        await browser.convert(f"program=shop&click_id={'0' * 32}&order_id=G1")
        status, _ = await tracker.terminate(timeout=30)
        assert status == 0

    async def all_final() -> bool:
        found = await conversions(moto_url, env)
        return len(found) == 7 and all(i["attribution"]["S"] != "PENDING" for i in found.values())

    await eventually(all_final)
    items = await conversions(moto_url, env)
    duplicates = [
        i
        for i in (await scan_table(moto_url, env["EVENTS_TABLE"]))
        if i.get("order_id", {}).get("S") == "A1"
    ]
    assert sorted(i["attribution"]["S"] for i in duplicates) == ["ATTRIBUTED", "DUPLICATE"]
    assert {name: i["attribution"]["S"] for name, i in items.items() if name != "A1"} == {
        "B1": "ATTRIBUTED",  # to a crawler's click: not billable
        "C1": "NO_CLICK_ID",
        "D1": "NO_CONSENT",
        "E1": "PROGRAM_MISMATCH",
        "F1": "OUTSIDE_WINDOW",
        "G1": "UNKNOWN_CLICK",
    }
    assert items["B1"]["click_billable"] == {"BOOL": False}
    assert "click_id" not in items["D1"]  # no consent: the click id is not kept
    counts = await rollup_counts(moto_url, env)
    assert counts["conversions"] == 1
    assert counts["revenue.EUR"] == 49_900_000
    assert "revenue.USD" not in counts
    assert counts["unattributed_conversions"] == 6


async def test_a_late_click_is_waited_for_and_the_shard_flows_meanwhile(
    env: dict[str, str], workers: Workers, moto_url: str, tmp_path: Any
) -> None:
    env = {**env, "MATCH_WAIT_SECONDS": "120"}
    workers.env = env
    workers.start("a")
    kinesalite = urlsplit(env["AWS_ENDPOINT_URL_KINESIS"])
    assert kinesalite.hostname is not None
    assert kinesalite.port is not None
    proxy = await PartitionProxy(kinesalite.hostname, kinesalite.port).start()
    cut_off = {**env, "AWS_ENDPOINT_URL_KINESIS": proxy.url, "SPILL_DIR": str(tmp_path / "a")}
    connected = {**env, "SPILL_DIR": str(tmp_path / "b"), "SHIP_LINGER_MS": "20"}
    try:
        async with (
            tracker_process(cut_off) as far,
            tracker_process(connected) as near,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        ):
            proxy.partition()
            click_id = await Browser(session, far.base_url).click("shop")
            near_browser = Browser(session, near.base_url)
            await near_browser.convert(
                f"program=shop&click_id={click_id}&order_id=L1&value=10&currency=EUR"
            )

            async def waiting() -> bool:
                found = await conversions(moto_url, env)
                return bool(found.get("L1", {}).get("attribution", {}).get("S") == "PENDING")

            await eventually(waiting)
            for tag in range(20):  # the shard goes on while the conversion waits
                await near_browser.pixel(tag)

            async def pixels_stored() -> bool:
                items = await scan_table(moto_url, env["EVENTS_TABLE"])
                return sum("params" in i for i in items) == 20

            await eventually(pixels_stored)
            assert (await conversions(moto_url, env))["L1"]["attribution"]["S"] == "PENDING"
            proxy.heal()  # the click reaches Kinesis at last

            async def attributed() -> bool:
                found = await conversions(moto_url, env)
                return bool(found["L1"]["attribution"]["S"] == "ATTRIBUTED")

            await eventually(attributed, timeout=90)
            for process in (far, near):
                status, _ = await process.terminate(timeout=30)
                assert status == 0
    finally:
        await proxy.close()
    item = (await conversions(moto_url, env))["L1"]
    assert item["attribution_by"] == {"S": "match"}
    counts = await rollup_counts(moto_url, env)
    assert (counts["conversions"], counts["revenue.EUR"], counts["unattributed_conversions"]) == (
        1,
        10_000_000,
        0,
    )


async def test_kills_and_redeliveries_leave_attributed_counts_and_revenue_exact(
    env: dict[str, str], workers: Workers, kinesalite_url: str, moto_url: str, tmp_path: Any
) -> None:
    victim = workers.start("a")
    await wait_owners(moto_url, env, {"a": 1})  # the victim holds the shard
    workers.start("b")
    tracker_env = {**env, "SPILL_DIR": str(tmp_path / "spill"), "SHIP_LINGER_MS": "20"}
    sent: dict[str, int] = {}  # order id -> value in cents, for every answered conversion
    async with (
        tracker_process(tracker_env) as tracker,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        browser = Browser(session, tracker.base_url)
        for n in range(60):
            click_id = await browser.click("shop")
            cents = 100 + n
            value = f"{cents // 100}.{cents % 100:02d}"
            query = f"program=shop&click_id={click_id}&order_id=K{n}&value={value}&currency=EUR"
            await browser.convert(query, POSTBACK if n % 2 else BROWSER)
            sent[f"K{n}"] = cents
            if n == 20:
                victim.kill()  # SIGKILL mid-stream: no checkpoint, no lease release
        status, _ = await tracker.terminate(timeout=30)
        assert status == 0

    async def settled() -> bool:
        found = await conversions(moto_url, env)
        final = [i for i in found.values() if i["attribution"]["S"] == "ATTRIBUTED"]
        return len(final) == len(sent)

    await eventually(settled, timeout=120)
    # Everything delivered again: checkpoints rewound, and every conversion put a second time.
    for process in workers.started:
        process.stop()
    await rewind_checkpoints(moto_url, env)
    items = list((await conversions(moto_url, env)).values())
    copies = await copies_of(
        kinesalite_url, env["EVENT_STREAM"], {i["message_id"]["S"] for i in items}
    )
    put = await put_records(kinesalite_url, env["EVENT_STREAM"], copies)
    workers.start("d")
    await wait_checkpoints_past(
        moto_url, env, {put[-1]["ShardId"]: max((p["SequenceNumber"] for p in put), key=int)}
    )
    await asyncio.sleep(2 * float(env["MATCH_POLL_MS"]) / 1000)
    found = await conversions(moto_url, env)
    assert {name: i["attribution"]["S"] for name, i in found.items()} == dict.fromkeys(
        sent, "ATTRIBUTED"
    )
    counts = await rollup_counts(moto_url, env)
    assert counts["conversions"] == len(sent)
    assert counts["revenue.EUR"] == sum(sent.values()) * 10_000
    assert counts["unattributed_conversions"] == 0


async def test_a_double_click_converts_as_its_first_billable_click(
    env: dict[str, str], workers: Workers, moto_url: str, tmp_path: Any
) -> None:
    workers.start("a")
    tracker_env = {**env, "SPILL_DIR": str(tmp_path / "spill"), "SHIP_LINGER_MS": "20"}
    async with (
        tracker_process(tracker_env) as tracker,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
    ):
        ids = []
        for _ in range(2):  # the same person clicks twice: the second is a duplicate
            url = f"{tracker.base_url}/v1/click?program=shop"
            headers = {"User-Agent": f"{BROWSER} double"}
            async with session.get(url, headers=headers, allow_redirects=False) as answer:
                ids.append(parse_qs(urlsplit(answer.headers["Location"]).query)[PARAM][0])
        first, second = ids
        assert first != second
        await asyncio.sleep(1.5)
        browser = Browser(session, tracker.base_url)
        await browser.convert(f"program=shop&click_id={second}&order_id=DC1&value=20&currency=EUR")
        status, _ = await tracker.terminate(timeout=30)
        assert status == 0

    async def decided() -> bool:
        found = await conversions(moto_url, env)
        return found.get("DC1", {}).get("attribution", {}).get("S") not in (None, "PENDING")

    await eventually(decided)
    items = await scan_table(moto_url, env["EVENTS_TABLE"])
    clicks = {i["message_id"]["S"]: i for i in items if i["event_type"]["S"] == "CLICK"}
    assert clicks[second]["ivt"] == {"S": "IVT_DUPLICATE_CLICK"}
    assert clicks[second]["original_click_id"] == {"S": first}
    item = (await conversions(moto_url, env))["DC1"]
    assert item["attribution"] == {"S": "ATTRIBUTED"}
    assert item["click_billable"] == {"BOOL": True}
    assert item["click_timestamp_ms"] == clicks[first]["timestamp_ms"]
    assert (await rollup_counts(moto_url, env))["conversions"] == 1
