"""`make run`'s demo traffic against a real tracker: every pixel answered 200, every click a
redirect and every conversion the GIF, each made-up browser a visitor of its own on the stream,
and each conversion naming a click that was shipped, with the order it reported."""

from __future__ import annotations

import asyncio

from tests.support.kinesis import wait_for_events
from tests.support.programs import STANDARD, program, write_programs
from tests.support.tracker_process import tracker_process
from tracker.conversions import value_micros
from tracker.devstack import demo_traffic
from tracker.schema.tracking.v1 import tracking_pb2 as pb

SHOP = demo_traffic.ConvertingProgram("shop", "adt_click")
RUN = "test1"


async def test_the_demo_traffic_is_answered_and_shipped(
    tracker_env: dict[str, str], redis_url: str, kinesalite_url: str
) -> None:
    await write_programs(redis_url, [*STANDARD, program("shop", click_id_param="adt_click")])
    async with tracker_process(tracker_env) as tracker:
        sent = await asyncio.to_thread(
            demo_traffic.send_demo_traffic, tracker.port, ("live",), SHOP, RUN
        )
        status, _ = await tracker.terminate(timeout=30)
    pixels = demo_traffic.BROWSERS * demo_traffic.PIXELS_PER_BROWSER
    orders = demo_traffic.CONVERTING_BROWSERS + demo_traffic.POSTBACKS
    assert sent == demo_traffic.Sent(pixels, 2 * demo_traffic.CLICKING_BROWSERS, orders)
    assert status == 0
    events = await wait_for_events(kinesalite_url, tracker_env["EVENT_STREAM"], sum(sent))
    impressions = [e for e in events if e.event_type == pb.IMPRESSION]
    assert len(impressions) == pixels
    assert all(e.billable for e in impressions)  # browsers, not crawlers
    assert len({e.visitor_id for e in impressions}) == demo_traffic.BROWSERS
    clicks = {e.message_id: e for e in events if e.event_type == pb.CLICK}
    by_program = sorted(e.programid for e in clicks.values())
    assert by_program == sorted(["live", "shop"] * demo_traffic.CLICKING_BROWSERS)
    _check_conversions([e for e in events if e.event_type == pb.CONVERSION], clicks)


def _check_conversions(
    conversions: list[pb.TrackingEvent], clicks: dict[str, pb.TrackingEvent]
) -> None:
    """One per order sent, each naming a billable click on the shop, a browser's or (the last)
    a server's postback."""
    assert sorted(c.order_id for c in conversions) == [
        demo_traffic.order_id(RUN, n) for n in range(1, len(conversions) + 1)
    ]
    assert all(c.programid == SHOP.program_id for c in conversions)
    assert all(
        c.value_micros == value_micros(demo_traffic.ORDER_VALUE) == 49_900_000 for c in conversions
    )
    assert all(c.currency == "EUR" for c in conversions)
    named = [clicks[c.click_id] for c in conversions]  # KeyError: a click that was not shipped
    assert len({c.message_id for c in named}) == len(conversions)  # a click each
    assert all(c.programid == SHOP.program_id and c.billable for c in named)
    postbacks = [c for c in conversions if not c.billable]  # curl: a known crawler
    assert [c.order_id for c in postbacks] == [demo_traffic.order_id(RUN, len(conversions))]
