"""A real browser against a real tracker: Debian's headless Chromium (chromedriver, selenium)
visits publisher pages served on 127.0.0.1, and the events are read back from the Kinesis stream.

- the pixel loads as an image, and its impression is billable, with the page as referer;
- a signed click link lands on the program's landing page and is billable; the same link with
  its signature tampered with lands there too, flagged IVT_BAD_SIGNATURE;
- `<link rel=prefetch>` of a pixel: Chromium fetches it with `Sec-Purpose: prefetch`, and the
  impression is flagged IVT_PREFETCH.

Needs `chromium` and `chromedriver` (`make browser`); without them the tests skip, unless CI is
set: then they fail.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.support.browser import (
    Browser,
    PublisherSite,
    browser_binaries,
    publisher_site,
    start_chrome,
)
from tests.support.kinesis import read_events
from tests.support.programs import program, write_programs
from tests.support.tracker_process import TrackerProcess, tracker_process
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.timeout(120)

EVENT_TIMEOUT = 20.0  # seconds for an event to reach the stream (prefetches come when they come)
SHOP = "shop"
SHOP_TAMPERED = "shop-tampered"  # a program of its own: no duplicate click of SHOP's
BLOG = "blog"

# Chromium's default policy (strict-origin-when-cross-origin) sends only the origin to another
# port; a publisher page that lets its ad tags see the page says so.
HEAD = '<meta charset="utf-8"><meta name="referrer" content="no-referrer-when-downgrade">'
# True once the <img> with that id has loaded as a 1x1 image.
IMAGE_LOADED = (
    "const img = document.getElementById(arguments[0]);"
    " return img.complete && img.naturalWidth == 1"
)
LANDING = (
    f"<!doctype html><html><head>{HEAD}<title>Shop</title></head>"
    '<body><h1 id="welcome">Welcome to the shop</h1></body></html>'
)


def page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head>{HEAD}<title>{title}</title>{head}</head>"
        f"<body>{body}</body></html>"
    )


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium, chromedriver = browser_binaries()
    driver = start_chrome(chromium, chromedriver, tmp_path_factory.mktemp("chrome-profile"))
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.fixture
async def site() -> AsyncIterator[PublisherSite]:
    async with publisher_site() as served:
        served.add_page("/landing", LANDING)
        yield served


@pytest.fixture
def signing_env(tracker_env: dict[str, str]) -> dict[str, str]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    # Chromium shares the machine's two cores with the tracker: a first lookup of a program in
    # Redis may take longer than the default 50 ms, which would mark its event UNVERIFIED. These
    # tests are about what the browser meets, not about a slow Redis (tests/test_validator.py).
    return {**tracker_env, "CLICK_SIGNING_KEYS": f"k1:{key}", "REDIS_TIMEOUT_MS": "2000"}


@pytest.fixture
async def tracker(
    signing_env: dict[str, str], redis_url: str, site: PublisherSite
) -> AsyncIterator[TrackerProcess]:
    landing = site.url("/landing")
    await write_programs(
        redis_url, [program(pid, landing_url=landing) for pid in (SHOP, SHOP_TAMPERED, BLOG)]
    )
    async with tracker_process(signing_env) as process:
        await wait_ready(process.base_url)
        yield process


async def wait_ready(base_url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    status = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{base_url}/readyz") as response:
                status = response.status
            if status == 200:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"tracker not ready after {timeout}s: /readyz {status}")


async def events_by_tag(
    endpoint: str, stream: str, tags: set[str], timeout: float = EVENT_TIMEOUT
) -> dict[str, list[pb.TrackingEvent]]:
    """The stream's events by their `tag` parameter, polled until every tag in `tags` has one
    (or `timeout` passes: the caller's assertions then say what is missing)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[pb.TrackingEvent]] = {}
        for event in await read_events(endpoint, stream):
            found.setdefault(event.params.get("tag", ""), []).append(event)
        if tags <= found.keys() or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def sign_link(env: dict[str, str], program_id: str, tag: str, base_url: str) -> str:
    """`tracker links sign`, as an operator runs it: the signed click URL it prints."""
    command = [sys.executable, "-m", "tracker", "links", "sign", "--program", program_id]
    command += ["--param", f"tag={tag}", "--base-url", base_url]
    result = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.returncode}\n{result.stderr}"
    url = result.stdout.strip().splitlines()[-1]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{base_url}/v1/click", url
    assert query["program"] == [program_id]
    assert query["tag"] == [tag]
    assert {"exp", "kid", "sig"} <= query.keys(), url
    return url


def tamper_signature(url: str) -> str:
    """The same URL with one character of the `sig` value changed, nothing else touched.

    The first character: a base64 signature's last one can carry padding bits only. Digits are
    valid in hex and in base64 alike."""
    base, query = url.split("?", 1)
    items = query.split("&")
    for index, item in enumerate(items):
        if item.startswith("sig="):
            value = item.removeprefix("sig=")
            changed = ("1" if value[0] == "0" else "0") + value[1:]
            items[index] = f"sig={changed}"
            return f"{base}?{'&'.join(items)}"
    raise AssertionError(f"no sig in {url}")


def only(events: dict[str, list[pb.TrackingEvent]], tag: str) -> pb.TrackingEvent:
    tagged = events.get(tag, [])
    assert len(tagged) == 1, f"{len(tagged)} events tagged {tag!r}, {len(events)} tags: {events}"
    return tagged[0]


async def test_pixel_loads_as_an_image_and_is_billable(
    chrome: Browser,
    site: PublisherSite,
    tracker: TrackerProcess,
    kinesalite_url: str,
    event_stream: str,
) -> None:
    pixel = f"{tracker.base_url}/v1/pixel?program={SHOP}&tag=view"
    site.add_page("/article", page("Article", f'<p>News</p><img id="ad" alt="" src="{pixel}">'))

    await chrome.get(site.url("/article?id=7&session=s3cr3t"))
    await chrome.wait_for(lambda driver: driver.execute_script(IMAGE_LOADED, "ad"))

    event = only(await events_by_tag(kinesalite_url, event_stream, {"view"}), "view")
    user_agent = await chrome.script("return navigator.userAgent")
    assert event.event_type == pb.IMPRESSION
    assert event.programid == SHOP
    assert event.validation == pb.OK
    assert event.user_agent == user_agent
    assert "Chrome/" in event.user_agent
    assert "Headless" not in event.user_agent
    assert event.referer == site.url("/article")  # scheme, host, path: no query
    assert event.ivt == pb.IVT_NONE
    assert event.billable


async def test_signed_click_lands_and_a_tampered_one_is_flagged(
    chrome: Browser,
    site: PublisherSite,
    tracker: TrackerProcess,
    signing_env: dict[str, str],
    kinesalite_url: str,
    event_stream: str,
) -> None:
    signed = await sign_link(signing_env, SHOP, "click", tracker.base_url)
    forged = tamper_signature(
        await sign_link(signing_env, SHOP_TAMPERED, "tampered", tracker.base_url)
    )
    body = f'<a id="buy" href="{signed}">Buy</a> <a id="buy-tampered" href="{forged}">Buy too</a>'
    offer = site.add_page("/offer", page("Offer", body))
    landing = site.url("/landing")

    for link in ("buy", "buy-tampered"):
        await chrome.get(offer)
        await chrome.click(link)
        await chrome.wait_for(lambda driver: driver.current_url == landing)
        await chrome.wait_for(
            lambda driver: (
                driver.execute_script(
                    "const h = document.getElementById('welcome'); return h && h.textContent"
                )
                == "Welcome to the shop"
            )
        )

    events = await events_by_tag(kinesalite_url, event_stream, {"click", "tampered"})
    click = only(events, "click")
    assert click.event_type == pb.CLICK
    assert click.programid == SHOP
    assert click.validation == pb.OK
    assert click.ivt == pb.IVT_NONE
    assert click.billable

    tampered = only(events, "tampered")
    assert tampered.event_type == pb.CLICK
    assert tampered.programid == SHOP_TAMPERED
    assert tampered.validation == pb.OK
    assert tampered.ivt == pb.IVT_BAD_SIGNATURE
    assert not tampered.billable


async def test_prefetched_pixel_is_flagged(
    chrome: Browser,
    site: PublisherSite,
    tracker: TrackerProcess,
    kinesalite_url: str,
    event_stream: str,
) -> None:
    pixel = f"{tracker.base_url}/v1/pixel?program={BLOG}&tag=prefetch"
    probe = site.add_page("/probe", "")  # the same prefetch, seen by our own server
    head = f'<link rel="prefetch" href="{pixel}"><link rel="prefetch" href="{probe}">'
    await chrome.get(site.add_page("/next", page("Next", "<p>Read on</p>", head)))

    events = await events_by_tag(kinesalite_url, event_stream, {"prefetch"})
    seen = site.requests_to("/probe")
    assert seen, "Chromium did not prefetch the probe"
    purposes = {key: seen[0].headers.get(key) for key in ("Sec-Purpose", "Purpose", "X-Moz")}
    assert "prefetch" in (purposes["Sec-Purpose"] or ""), purposes

    tagged = events.get("prefetch", [])
    assert tagged, f"no prefetch event within {EVENT_TIMEOUT}s: {events}"
    for event in tagged:  # a browser may prefetch twice; none of them is a view
        assert event.event_type == pb.IMPRESSION
        assert event.programid == BLOG
        assert event.validation == pb.OK
        assert event.ivt == pb.IVT_PREFETCH
        assert not event.billable
