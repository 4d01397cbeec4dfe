"""Traffic integrity end to end: every invalid-traffic reason and billable combination, with the
events read back from kinesalite. One real `tracker serve` with TRACKER_WORKERS=2 (duplicate
clicks across processes, on separate connections); in-process trackers for what needs an injected
clock or a stopped Redis. The answers never change: a crawler gets its GIF, a flagged click its
redirect to the program's landing URL."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Client, StartTracker, with_visitor_secret
from tests.support.clock import FakeClock
from tests.support.kinesis import wait_for_events
from tests.support.programs import program, write_programs
from tests.support.tcf_strings import tc_string
from tests.support.tracker_process import TrackerProcess, tracker_process
from tracker.app import CORE
from tracker.devstack.processes import ManagedProcess
from tracker.handlers import LONG_TC_WALK, MATCHED_AFTER_LONG_WALK, PIXEL_GIF
from tracker.integrity.signing import SigningKey, signed_click_url
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.usefixtures("redis_proc")

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
NEW_KEY = SigningKey("k2", os.urandom(32))
OLD_KEY = SigningKey("k1", os.urandom(32))
LANDING = "https://shop.example/live"
FALLBACK = "https://fallback.example/"
PROGRAMS = [program("live", landing_url=LANDING), program("off", valid=False)]


def keys_setting(*keys: SigningKey) -> str:
    return ",".join(f"{key.kid}:{base64.b64encode(key.secret).decode()}" for key in keys)


def click_url(base: str, tag: str, key: SigningKey = NEW_KEY, ttl: int = 3600) -> str:
    return signed_click_url(base, "live", [("tag", tag)], key, int(time.time()) + ttl)


@pytest.fixture
async def two_workers(
    tracker_env: dict[str, str], redis_url: str, tmp_path: Path
) -> AsyncIterator[TrackerProcess]:
    await write_programs(redis_url, PROGRAMS)
    env = {
        **tracker_env,
        "SPILL_DIR": str(tmp_path / "spill"),
        "TRACKER_WORKERS": "2",
        "CLICK_SIGNING_KEYS": keys_setting(NEW_KEY, OLD_KEY),
        "CLICK_FALLBACK_URL": FALLBACK,
        "DUPLICATE_CLICK_SECONDS": "60",
    }
    async with tracker_process(env) as process:
        yield process


async def fetch(
    url: str, user_agent: str = BROWSER, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    """One request on a connection of its own (so SO_REUSEPORT may hand it to either worker)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            url, headers={"User-Agent": user_agent, **(headers or {})}, allow_redirects=False
        ) as response,
    ):
        await response.read()
        return response


async def test_every_reason_and_billable_end_to_end_on_two_workers(
    two_workers: TrackerProcess, kinesalite_url: str, event_stream: str
) -> None:
    base = two_workers.base_url
    warm = await both_workers_serving(base, kinesalite_url, event_stream)
    pixel = f"{base}/v1/pixel?program="
    expected: dict[str, tuple[int, bool]] = {}

    async def pixel_case(
        tag: str,
        ivt: int,
        billable: bool,
        user_agent: str = BROWSER,
        headers: dict[str, str] | None = None,
    ) -> None:
        program_id = "off" if tag == "inactive" else "live"
        response = await fetch(f"{pixel}{program_id}&tag={tag}", user_agent, headers)
        assert response.status == 200  # a crawler, a prefetch: the same GIF
        assert response.headers["Content-Type"] == "image/gif"
        expected[tag] = (ivt, billable)

    async def click_case(
        tag: str, url: str, ivt: int, billable: bool, user_agent: str = BROWSER
    ) -> None:
        # A client of its own per case: the same client's second click would be a duplicate.
        response = await fetch(url, f"{user_agent} case/{tag}")
        assert response.status == 302
        assert response.headers["Location"] == LANDING  # flagged or not, never elsewhere
        expected[tag] = (ivt, billable)

    await pixel_case("view", pb.IVT_NONE, True)
    await pixel_case("inactive", pb.IVT_NONE, False)
    await pixel_case("bot", pb.IVT_KNOWN_CRAWLER, False, user_agent=CRAWLER)
    await pixel_case("prefetch", pb.IVT_PREFETCH, False, headers={"Sec-Purpose": "prefetch"})
    await pixel_case("moz", pb.IVT_PREFETCH, False, headers={"X-Moz": "prefetch"})
    await pixel_case("prerender", pb.IVT_PREFETCH, False, headers={"Purpose": "prefetch;prerender"})

    await click_case("signed", click_url(base, "signed"), pb.IVT_NONE, True)
    old = click_url(base, "old-key", OLD_KEY)  # rotation: the old key still verifies
    await click_case("old-key", old, pb.IVT_NONE, True)
    tampered = click_url(base, "tampered").replace("tag=tampered", "tag=tampered2")
    await click_case("tampered2", tampered, pb.IVT_BAD_SIGNATURE, False)
    appended = click_url(base, "appended") + "&url=https%3A%2F%2Fevil.example%2F"
    await click_case("appended", appended, pb.IVT_BAD_SIGNATURE, False)
    unsigned = f"{base}/v1/click?program=live&tag=unsigned"
    await click_case("unsigned", unsigned, pb.IVT_BAD_SIGNATURE, False)
    expired = click_url(base, "expired", ttl=-10)
    await click_case("expired", expired, pb.IVT_EXPIRED_LINK, False)
    consented = click_url(base, "consented") + "&gdpr=1&gdpr_consent=CPxyz"  # the CMP's macros
    await click_case("consented", consented, pb.IVT_NONE, True)
    # A click's link comes first: a crawler on a bad link is a bad link, on a good one a crawler.
    for tag, url, ivt in (
        ("bot-signed", click_url(base, "bot-signed"), pb.IVT_KNOWN_CRAWLER),
        ("bot-unsigned", f"{base}/v1/click?program=live&tag=bot-unsigned", pb.IVT_BAD_SIGNATURE),
    ):
        await click_case(tag, url, ivt, False, user_agent=CRAWLER)

    # The same client clicks again and again, each time on a new connection: whichever worker
    # gets a click, only the first is not a duplicate.
    again = click_url(base, "again")
    for _ in range(12):
        response = await fetch(again)
        assert response.headers["Location"] == LANDING

    total = warm + len(expected) + 12
    events = await wait_for_events(kinesalite_url, event_stream, total, timeout=30)
    events = [e for e in events if not e.params["tag"].startswith("warm")]
    by_tag = {e.params["tag"]: e for e in events if e.params["tag"] != "again"}
    assert {tag: (e.ivt, e.billable) for tag, e in by_tag.items()} == expected
    repeated = [e for e in events if e.params["tag"] == "again"]
    assert sorted(e.ivt for e in repeated) == [pb.IVT_NONE] + [pb.IVT_DUPLICATE_CLICK] * 11
    assert len({e.tracker_instance for e in repeated}) == 2, "both workers got clicks"
    assert [e.billable for e in repeated].count(True) == 1
    text = await metrics_text(two_workers)
    assert 'tracker_events_by_ivt_total{billable="false",ivt="IVT_DUPLICATE_CLICK"}' in text


async def both_workers_serving(base: str, kinesalite_url: str, stream: str) -> int:
    """Pixels on new connections until both workers have answered one (the second may bind its
    socket a moment after the first); how many were sent."""
    for sent in range(1, 61):
        await fetch(f"{base}/v1/pixel?program=live&tag=warm-{sent}", CRAWLER)
        if sent % 5 == 0:
            events = await wait_for_events(kinesalite_url, stream, sent)
            if len({e.tracker_instance for e in events}) == 2:
                return sent
    raise AssertionError("one worker answered 60 connections: the other never served")


async def metrics_text(tracker: TrackerProcess) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tracker.base_url}/metrics") as response,
    ):
        return await response.text()


async def started(start_tracker: StartTracker, clock: FakeClock, **settings: str) -> Client:
    return await with_visitor_secret(await start_tracker(clock=clock, **settings))


async def test_expiry_follows_the_clock_and_unsigned_clicks_pass_without_keys(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    clock = FakeClock(time.time())
    signing = await started(start_tracker, clock, CLICK_SIGNING_KEYS=keys_setting(NEW_KEY))
    unsigned = await started(start_tracker, clock, DUPLICATE_CLICK_SECONDS="0")

    def path(tag: str) -> str:
        link = signed_click_url("http://x", "live", [("tag", tag)], NEW_KEY, int(clock.now) + 60)
        return link.removeprefix("http://x")

    async def click(client: Client, target: str) -> None:
        response = await client.get(target, headers={"User-Agent": BROWSER}, allow_redirects=False)
        assert response.headers["Location"] == LANDING

    await click(signing, path("appended") + "&n=1")
    await click(signing, path("in-time"))
    late = path("late")
    clock.now += 60  # exp is reached: the link has expired
    await click(signing, late)
    await click(unsigned, "/v1/click?program=live&tag=plain")  # not checked without keys
    events = await wait_for_events(kinesalite_url, event_stream, 4)
    assert {e.params["tag"]: e.ivt for e in events} == {
        "appended": pb.IVT_BAD_SIGNATURE,
        "in-time": pb.IVT_NONE,
        "late": pb.IVT_EXPIRED_LINK,
        "plain": pb.IVT_NONE,
    }


async def test_redis_down_means_not_a_duplicate_and_is_counted(
    start_tracker: StartTracker,
    redis_url: str,
    redis_proc: ManagedProcess,
    kinesalite_url: str,
    event_stream: str,
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await started(start_tracker, FakeClock(time.time()))
    headers = {"User-Agent": BROWSER}
    await client.get("/v1/pixel?program=live", headers=headers)  # caches the program
    redis_proc.kill()
    for n in range(2):
        response = await client.get(
            f"/v1/click?program=live&n={n}", headers=headers, allow_redirects=False
        )
        assert response.headers["Location"] == LANDING
    events = await wait_for_events(kinesalite_url, event_stream, 3)
    clicks = [e for e in events if e.event_type == pb.CLICK]
    assert [e.ivt for e in clicks] == [pb.IVT_NONE, pb.IVT_NONE]
    registry = client.app[CORE].metrics.registry
    checks = "tracker_duplicate_click_checks_total"
    assert registry.get_sample_value(checks, {"result": "unchecked"}) == 2


async def test_a_crawler_still_gets_its_gif_and_is_counted(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker()
    response = await client.get("/v1/pixel?program=live", headers={"User-Agent": CRAWLER})
    assert await response.read() == PIXEL_GIF
    events = await wait_for_events(kinesalite_url, event_stream, 1)
    assert (events[0].ivt, events[0].billable) == (pb.IVT_KNOWN_CRAWLER, False)
    registry = client.app[CORE].metrics.registry
    labels = {"ivt": "IVT_KNOWN_CRAWLER", "billable": "false"}
    assert registry.get_sample_value("tracker_events_by_ivt_total", labels) == 1


# Googlebot's smartphone agent: among the crawlers that name themselves latest (~165).
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.6778.139 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)"
)


async def test_a_long_tc_walk_leaves_a_new_user_agent_a_shorter_look(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    """One request's costly reads share a budget: after a TC string whose range section took a
    walk of more than LONG_TC_WALK entries, a new user agent is matched on its first
    MATCHED_AFTER_LONG_WALK characters. Googlebot's smartphone agent names itself within them;
    a crawler named past them is not seen then, and that shorter answer is not remembered: the
    same agent on its own is a crawler."""
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker(TCF_VENDOR_ID="755")
    entries = [(2 * n + 1, 2 * n + 1) for n in range(LONG_TC_WALK + 1)]
    walked = tc_string(purposes={7}, ranges=True, range_entries=entries, max_vendor_id=0xFFFF)
    short = tc_string(purposes={7}, ranges=True, range_entries=entries[:3], max_vendor_id=0xFFFF)
    named_late = "Mozilla/5.0 " + "x" * MATCHED_AFTER_LONG_WALK + " Googlebot/2.1"
    assert len(GOOGLEBOT_SMARTPHONE) > MATCHED_AFTER_LONG_WALK  # so it is cut
    cases = [  # (tag, TC string, user agent, ivt), in this order
        ("late-walked", walked, named_late, pb.IVT_NONE),
        ("late-alone", None, named_late, pb.IVT_KNOWN_CRAWLER),
        ("late-short", short, named_late + " ", pb.IVT_KNOWN_CRAWLER),
        ("phone-walked", walked, GOOGLEBOT_SMARTPHONE, pb.IVT_KNOWN_CRAWLER),
    ]
    for tag, consent, agent, _ in cases:
        query = f"&gdpr=1&gdpr_consent={consent}" if consent else ""
        target = f"/v1/pixel?program=live&tag={tag}{query}"
        response = await client.get(target, headers={"User-Agent": agent})
        assert await response.read() == PIXEL_GIF
    events = await wait_for_events(kinesalite_url, event_stream, len(cases))
    assert {e.params["tag"]: e.ivt for e in events} == {tag: ivt for tag, _, _, ivt in cases}
