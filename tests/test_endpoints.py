"""Every tracking endpoint's answer, and the events it ships, against real Redis and kinesalite."""

from __future__ import annotations

import json

import pytest

from tests.conftest import StartTracker
from tests.support.kinesis import read_events, wait_for_events
from tests.support.programs import STANDARD, write_programs
from tracker.app import CORE
from tracker.handlers import PIXEL_GIF
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.usefixtures("redis_proc")

EXPECTED = {
    "live": pb.OK,
    "live-no-url": pb.OK,
    "off": pb.INACTIVE,
    "expired": pb.OUTSIDE_WINDOW,
    "future": pb.OUTSIDE_WINDOW,
    "nope": pb.UNKNOWN_PROGRAM,
}


async def test_pixel_answers_gif_and_ships_one_event_per_request(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    for program_id in EXPECTED:
        response = await client.get(
            "/v1/pixel",
            params={"program": program_id, "utm_source": "news"},
            headers={"User-Agent": "test-agent", "Referer": "https://pages.example/a"},
        )
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/gif"
        assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert await response.read() == PIXEL_GIF
    events = await wait_for_events(kinesalite_url, event_stream, len(EXPECTED))
    assert {e.programid: e.validation for e in events} == EXPECTED
    assert len(events) == len(EXPECTED)
    by_id = {e.programid: e for e in events}
    live = by_id["live"]
    assert live.is_valid
    assert live.event_type == pb.IMPRESSION
    assert live.program_name == "Program live"
    assert live.customer_id == 42
    assert live.checksum == "sum-live"
    assert live.customer_name == "Customer 42"
    assert live.user_agent == "test-agent"
    assert live.referer == "https://pages.example/a"
    assert live.client_ip_anonymized == "127.0.0.0"
    assert dict(live.params) == {"utm_source": "news"}
    assert live.timestamp_ms > 1_700_000_000_000
    assert not by_id["off"].is_valid
    assert not by_id["nope"].is_valid
    assert by_id["nope"].program_name == ""
    assert len({e.message_id for e in events}) == len(events)


@pytest.mark.parametrize("query", ["", "?program=", "?program=bad%20id", "?program=" + "x" * 65])
async def test_malformed_pixel_still_answers_gif_but_ships_nothing(
    start_tracker: StartTracker, kinesalite_url: str, event_stream: str, query: str
) -> None:
    client = await start_tracker()
    response = await client.get("/v1/pixel" + query)
    assert response.status == 200
    assert await response.read() == PIXEL_GIF
    metrics = client.app[CORE].metrics.registry
    malformed = {"route": "pixel", "outcome": "malformed"}
    assert metrics.get_sample_value("tracker_requests_total", malformed) == 1
    assert await read_events(kinesalite_url, event_stream) == []


async def test_customer_parameter_must_match_the_program(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    for customer in ("42", "43", "abc"):
        await client.get("/v1/pixel", params={"program": "live", "customer": customer})
    events = await wait_for_events(kinesalite_url, event_stream, 3)
    outcomes = sorted((e.requested_customer_id, e.validation) for e in events)
    assert outcomes == [(-1, pb.CUSTOMER_MISMATCH), (42, pb.OK), (43, pb.CUSTOMER_MISMATCH)]


async def test_click_redirects_only_to_the_programs_own_landing_url(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    response = await client.get(
        "/v1/click",
        params={"program": "live", "url": "https://evil.example/"},
        allow_redirects=False,
    )
    assert response.status == 302
    assert response.headers["Location"] == "https://example.com/live"
    for program_id in ("live-no-url", "off", "expired", "nope"):
        response = await client.get(
            "/v1/click", params={"program": program_id}, allow_redirects=False
        )
        assert response.status == 404, program_id
    response = await client.get("/v1/click", params={"program": "bad id"})
    assert response.status == 400
    events = await wait_for_events(kinesalite_url, event_stream, 5)
    assert len(events) == 5
    assert {e.event_type for e in events} == {pb.CLICK}


async def test_click_falls_back_when_configured(
    start_tracker: StartTracker, redis_url: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker(CLICK_FALLBACK_URL="https://fallback.example/home")
    for program_id in ("off", "nope", "live-no-url"):
        response = await client.get(
            "/v1/click", params={"program": program_id}, allow_redirects=False
        )
        assert response.status == 302
        assert response.headers["Location"] == "https://fallback.example/home"


async def test_event_route_keeps_the_reference_designs_answer(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, STANDARD)
    client = await start_tracker()
    response = await client.get("/event/live?utm_campaign=spring", headers={"User-Agent": "ua"})
    assert response.status == 200
    body = await response.json()
    assert {k: body[k] for k in body if k != "messageId"} == {
        "programId": "live",
        "programName": "Program live",
        "customerId": 42,
        "customerName": "Customer 42",
        "checksum": "sum-live",
        "userAgent": "ua",
        "valid": True,
        "validation": "OK",
    }
    unknown = await client.get("/event/nope")
    assert unknown.status == 404
    assert (await unknown.json())["programId"] == "nope"
    off = await (await client.get("/event/off")).json()
    assert off["valid"] is False
    assert off["validation"] == "INACTIVE"
    assert (await client.get("/event/bad%20id")).status == 400
    events = await wait_for_events(kinesalite_url, event_stream, 3)
    assert body["messageId"] in {e.message_id for e in events}
    shipped = next(e for e in events if e.message_id == body["messageId"])
    assert dict(shipped.params) == {"utm_campaign": "spring"}
    assert {e.event_type for e in events} == {pb.EVENT}


async def test_health_readiness_and_metrics(start_tracker: StartTracker) -> None:
    client = await start_tracker()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    await client.get("/v1/pixel", params={"program": "nope"})
    metrics = await (await client.get("/metrics")).text()
    assert 'tracker_requests_total{outcome="unknown_program",route="pixel"} 1.0' in metrics
    assert 'tracker_cache_lookups_total{result="miss"} 1.0' in metrics


async def test_admin_purge_needs_the_token(start_tracker: StartTracker, redis_url: str) -> None:
    await write_programs(redis_url, STANDARD)
    closed = await start_tracker()
    assert (await closed.post("/admin/cache/purge")).status == 404
    client = await start_tracker(ADMIN_TOKEN="s3cret")
    await client.get("/v1/pixel", params={"program": "live"})
    cache = client.app[CORE].cache
    assert len(cache) == 1
    assert (await client.post("/admin/cache/purge")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/admin/cache/purge", headers=wrong)).status == 401
    assert len(cache) == 1
    right = {"Authorization": "Bearer s3cret"}
    response = await client.post("/admin/cache/purge", headers=right)
    assert response.status == 200
    assert json.loads(await response.text()) == {"purged": 1}
    assert len(cache) == 0
