"""Privacy at the edge, end to end: a tracker on real Redis and kinesalite, its records read back
from the stream. Pseudonyms per client, customer and day (the clock injected); with consent denied
or GPC the records hold none of the probe's personal values, searched for in the raw bytes."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Client, StartTracker, with_visitor_secret
from tests.support.clock import FakeClock
from tests.support.kinesis import read_records, wait_for_events
from tests.support.programs import program, write_programs
from tests.support.tcf_strings import tc_string
from tracker.app import CORE
from tracker.privacy.daily_secret import DAY_SECONDS
from tracker.privacy.keys import user_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

pytestmark = pytest.mark.usefixtures("redis_proc")

VENDOR = "755"
USER_ID_KEY = "user-id-key-for-tests-0123456789"
PROBE_ADDRESS = "203.0.113.77"
PROBE_AGENT = "ProbeAgent/7.7 (distinctive)"
PROBE_REFERER_QUERY = "token=probe-secret-token-4242"
PROBE_REFERER = f"https://publisher.example/article/9?{PROBE_REFERER_QUERY}#probe-fragment"
PROBE_UID = "probe-uid-alice@example.com"
PROGRAMS = [program("shoes", customer_id=42), program("hats", customer_id=43)]
PRIVACY_ENV = {"TCF_VENDOR_ID": VENDOR, "USER_ID_KEY": USER_ID_KEY, "TRUST_FORWARDED_FOR": "true"}


async def pixel(
    client: Client,
    program_id: str,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    response = await client.get(
        "/v1/pixel",
        params={"program": program_id, **(query or {})},
        headers={
            "User-Agent": PROBE_AGENT,
            "Referer": PROBE_REFERER,
            "X-Forwarded-For": PROBE_ADDRESS,
            **(headers or {}),
        },
    )
    assert response.status == 200


async def test_visitor_id_is_per_client_customer_and_day_across_trackers(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    clock = FakeClock(time.time())
    first = await with_visitor_secret(await start_tracker(clock=clock, **PRIVACY_ENV))
    second = await with_visitor_secret(await start_tracker(clock=clock, **PRIVACY_ENV))
    await pixel(first, "shoes", query={"n": "1"})
    await pixel(second, "shoes", query={"n": "2"})  # another tracker, same client and customer
    await pixel(first, "hats", query={"n": "3"})  # another customer
    await pixel(first, "shoes", query={"n": "4"}, headers={"User-Agent": "Other/1.0"})
    clock.now += DAY_SECONDS  # the next day
    await with_visitor_secret(first)
    await pixel(first, "shoes", query={"n": "5"})
    events = await wait_for_events(kinesalite_url, event_stream, 5)
    by_n = {e.params["n"]: e.visitor_id for e in events}
    assert len(by_n) == 5
    assert all(len(v) == 32 for v in by_n.values())
    assert by_n["1"] == by_n["2"]
    assert len({by_n["1"], by_n["3"], by_n["4"], by_n["5"]}) == 4


async def test_denied_consent_and_gpc_leave_no_personal_value_on_the_stream(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await with_visitor_secret(await start_tracker(**PRIVACY_ENV))
    denied = tc_string(purposes={1, 2, 3}, vendors={int(VENDOR)})  # no purpose 7
    granted = tc_string(purposes={1, 7}, vendors={int(VENDOR)})
    uid = {"uid": PROBE_UID}
    await pixel(client, "shoes", query={"gdpr": "1", "gdpr_consent": denied, **uid})
    await pixel(client, "shoes", query={"gdpr": "1", **uid})
    await pixel(client, "shoes", query={"gdpr": "1", "gdpr_consent": "garbage!", **uid})
    await pixel(
        client,
        "shoes",
        query={"gdpr": "1", "gdpr_consent": granted, **uid},
        headers={"Sec-GPC": "1"},
    )
    await pixel(client, "shoes", query=uid, headers={"DNT": "1"})
    events = await wait_for_events(kinesalite_url, event_stream, 5)
    assert len(events) == 5
    assert [e.consent for e in events].count(pb.CONSENT_DENIED) == 3
    assert sum(e.gpc for e in events) == 2
    for event in events:
        assert event.validation == pb.OK  # still counted
        assert (event.visitor_id, event.user_key, event.user_agent) == ("", "", "")
        assert event.client_ip_anonymized == ""
        assert event.referer == "https://publisher.example"
        assert dict(event.params) == {}
    raw = b"".join(await read_records(kinesalite_url, event_stream))
    for value in (PROBE_AGENT, "203.0.113", PROBE_REFERER_QUERY, "probe-fragment", "probe-uid"):
        assert value.encode() not in raw
    assert granted.encode() not in raw
    assert denied.encode() not in raw


async def test_allowed_events_keep_minimised_fields_and_only_a_key_of_the_uid(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await with_visitor_secret(await start_tracker(**PRIVACY_ENV))
    granted = tc_string(purposes={1, 7}, vendors={int(VENDOR)})
    await pixel(client, "shoes", query={"gdpr": "1", "gdpr_consent": granted, "uid": PROBE_UID})
    await pixel(client, "shoes", query={"uid": PROBE_UID})
    events = await wait_for_events(kinesalite_url, event_stream, 2)
    assert sorted(e.consent for e in events) == [pb.CONSENT_NOT_APPLICABLE, pb.CONSENT_GRANTED]
    for event in events:
        assert event.user_agent == PROBE_AGENT
        assert event.client_ip_anonymized == "203.0.113.0"
        assert event.referer == "https://publisher.example/article/9"
        assert event.user_key == user_key(USER_ID_KEY.encode(), PROBE_UID)
        assert len(event.visitor_id) == 32
        assert dict(event.params) == {}
    raw = b"".join(await read_records(kinesalite_url, event_stream))
    for value in (PROBE_ADDRESS, PROBE_REFERER_QUERY, "probe-fragment", "probe-uid", granted):
        assert value.encode() not in raw


async def test_no_secret_at_hand_means_no_visitor_id_never_a_wait(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    clock = FakeClock(time.time())
    client = await with_visitor_secret(await start_tracker(clock=clock, **PRIVACY_ENV))
    await pixel(client, "shoes")  # caches the program
    clock.now += 3 * DAY_SECONDS  # a day whose secret nobody fetched yet
    await pixel(client, "shoes", query={"n": "late"})
    events = await wait_for_events(kinesalite_url, event_stream, 2)
    late = next(e for e in events if e.params.get("n") == "late")
    assert late.visitor_id == ""
    assert late.user_agent == PROBE_AGENT  # the rest of the event is unchanged
    registry = client.app[CORE].metrics.registry
    assert registry.get_sample_value("tracker_visitor_id_unavailable_total") == 1
    await with_visitor_secret(client)  # fetched in the background, for the next request


async def test_a_forwarded_address_longer_than_any_address_is_none(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    """Behind a load balancer the last X-Forwarded-For entry is the address; one longer than any
    textual address (a forged header without a balancer in front) is no address: no field, no
    pseudonym, and nothing of it hashed."""
    await write_programs(redis_url, PROGRAMS)
    client = await with_visitor_secret(await start_tracker(**PRIVACY_ENV))
    await pixel(client, "shoes", query={"n": "long"}, headers={"X-Forwarded-For": "1" * 65})
    await pixel(client, "shoes", query={"n": "plain"})
    events = {e.params["n"]: e for e in await wait_for_events(kinesalite_url, event_stream, 2)}
    assert (events["long"].client_ip_anonymized, events["long"].visitor_id) == ("", "")
    assert events["plain"].client_ip_anonymized == "203.0.113.0"
    assert len(events["plain"].visitor_id) == 32
