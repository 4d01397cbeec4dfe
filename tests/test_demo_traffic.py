"""`make run`'s demo traffic against a real tracker: every pixel answered 200 and every click a
redirect, and each made-up browser a visitor of its own on the stream."""

from __future__ import annotations

import asyncio

from tests.support.kinesis import wait_for_events
from tests.support.programs import STANDARD, write_programs
from tests.support.tracker_process import tracker_process
from tracker.devstack import demo_traffic
from tracker.schema.tracking.v1 import tracking_pb2 as pb


async def test_the_demo_traffic_is_answered_and_shipped(
    tracker_env: dict[str, str], redis_url: str, kinesalite_url: str
) -> None:
    await write_programs(redis_url, STANDARD)
    async with tracker_process(tracker_env) as tracker:
        sent = await asyncio.to_thread(demo_traffic.send_demo_traffic, tracker.port, ("live",))
        status, _ = await tracker.terminate(timeout=30)
    pixels = demo_traffic.BROWSERS * demo_traffic.PIXELS_PER_BROWSER
    assert sent == demo_traffic.Sent(pixels, demo_traffic.CLICKING_BROWSERS)
    assert status == 0
    events = await wait_for_events(kinesalite_url, tracker_env["EVENT_STREAM"], sum(sent))
    impressions = [e for e in events if e.event_type == pb.IMPRESSION]
    assert len(impressions) == pixels
    assert all(e.billable for e in impressions)  # browsers, not crawlers
    assert len({e.visitor_id for e in impressions}) == demo_traffic.BROWSERS
