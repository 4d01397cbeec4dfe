"""Click ids: the landing URL's rewriting, the templated redirect against aiohttp's own answer,
and clicks on a real tracker (real Redis and kinesalite): the id in the redirect is the shipped
click's message_id, and privacy withholds it."""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import StartTracker
from tests.support.kinesis import wait_for_events
from tests.support.programs import program, write_programs
from tests.test_answers import raw_exchange
from tracker.answers import SLOT, TemplatedAnswer
from tracker.click_ids import WINDOW_FIELDS, ClickIdRedirects, click_id_location
from tracker.handlers import NO_CACHE
from tracker.programs.model import MAX_ATTRIBUTION_WINDOW_DAYS, parse_program
from tracker.schema.tracking.v1 import tracking_pb2 as pb

PARAM = "adt_click"
CLICK_ID = "0123456789abcdef0123456789abcdef"
HEX32 = re.compile(r"[0-9a-f]{32}")


def rewritten(landing_url: str, param: str = PARAM) -> str:
    before, after = click_id_location(landing_url, param)
    return before + CLICK_ID + after


# --- the landing URL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("landing_url", "expected"),
    [
        ("https://s.example/p", "https://s.example/p?adt_click=ID"),
        ("https://s.example/p?utm=1&b=2", "https://s.example/p?utm=1&b=2&adt_click=ID"),
        ("https://s.example/p?utm=1#top", "https://s.example/p?utm=1&adt_click=ID#top"),
        ("https://s.example/p?", "https://s.example/p?adt_click=ID"),
        ("https://s.example/p?#top", "https://s.example/p?adt_click=ID#top"),
        ("https://s.example/p#top", "https://s.example/p?adt_click=ID#top"),
        ("https://s.example/p#", "https://s.example/p?adt_click=ID#"),
        ("https://s.example/#a?b=1&c#d", "https://s.example/?adt_click=ID#a?b=1&c#d"),
        ("https://s.example/p?adt_click=old&x=1", "https://s.example/p?x=1&adt_click=ID"),
        ("https://s.example/p?x=1&adt_click=", "https://s.example/p?x=1&adt_click=ID"),
        ("https://s.example/p?adt_click&x", "https://s.example/p?x&adt_click=ID"),
        ("https://s.example/p?adt%5Fclick=old", "https://s.example/p?adt_click=ID"),
        ("https://s.example/p?%61dt_click=old#f", "https://s.example/p?adt_click=ID#f"),
        (
            "https://s.example/p?adt_click=1&x=1&adt_click=2&adt%5fclick=3&y=2",
            "https://s.example/p?x=1&y=2&adt_click=ID",
        ),
        # Not the same name: kept as they are.
        (
            "https://s.example/p?ADT_CLICK=1&adt_click2=2&xadt_click=3&adt+click=4&adt_clic=5",
            "https://s.example/p?ADT_CLICK=1&adt_click2=2&xadt_click=3&adt+click=4&adt_clic=5"
            "&adt_click=ID",
        ),
        # The name only before the first "=", and "&" encoded is not a separator.
        ("https://s.example/p?q=adt_click%26adt_click%3D1", None),
        ("https://s.example/p?a=b=adt_click", None),
        # Percent-encodings that decode to nothing of the kind stay.
        ("https://s.example/p?%ZZ=1&%E9=2&é=3", None),
        ("http://s.example:8080/a/b;c?x=%20y#frag%20ment", None),
    ],
)
def test_the_click_id_is_added_to_the_landing_urls_query(
    landing_url: str, expected: str | None
) -> None:
    if expected is None:  # the URL's own query kept whole, the id added at its end
        address, hash_mark, fragment = landing_url.partition("#")
        expected = f"{address}&adt_click=ID{hash_mark}{fragment}"
    assert rewritten(landing_url) == expected.replace("ID", CLICK_ID)


_NAME = st.sampled_from([PARAM, "adt%5Fclick", "adt%5fclick", "%61dt_click", "utm", "a", "ADT"])
_QUERY_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "%-._~+/:@!$'()*,;", max_size=8
)
_PAIR = st.builds(
    lambda name, value, with_value: f"{name}={value}" if with_value else name,
    _NAME,
    _QUERY_TEXT,
    st.booleans(),
)
_FRAGMENT = st.none() | st.text(alphabet=string.ascii_letters + "?&=#/%", max_size=10)


@settings(max_examples=300, deadline=None, database=None)
@given(pairs=st.lists(_PAIR, max_size=6), question=st.booleans(), fragment=_FRAGMENT)
def test_every_landing_url_gets_exactly_one_click_id_and_keeps_the_rest(
    pairs: list[str], question: bool, fragment: str | None
) -> None:
    query = "&".join(pairs)
    landing_url = "https://shop.example/p" + ("?" + query if query or question else "")
    landing_url += "" if fragment is None else "#" + fragment
    parts = urlsplit(rewritten(landing_url))
    original = urlsplit(landing_url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.example", "/p")
    assert parts.fragment == original.fragment
    assert rewritten(landing_url).endswith("" if fragment is None else "#" + fragment)
    named = [pair for pair in parts.query.split("&") if unquote(pair.split("=")[0]) == PARAM]
    assert named == [f"{PARAM}={CLICK_ID}"]
    assert parts.query.endswith(f"{PARAM}={CLICK_ID}")
    others = [p for p in original.query.split("&") if p and unquote(p.split("=")[0]) != PARAM]
    assert parts.query.split("&")[:-1] == others


def test_window_fields_are_the_events_field_27() -> None:
    for days in (1, 30, MAX_ATTRIBUTION_WINDOW_DAYS):
        assert pb.TrackingEvent.FromString(WINDOW_FIELDS[days]).attribution_window_days == days


def test_one_answer_per_program_remade_when_its_landing_url_or_param_changes() -> None:
    redirects = ClickIdRedirects(2, {"Cache-Control": NO_CACHE})
    shop = parse_program(program("shop", click_id_param=PARAM))
    first = redirects.answer(shop, "https://a.example/", PARAM)
    assert redirects.answer(shop, "https://a.example/", PARAM) is first
    moved = redirects.answer(shop, "https://b.example/", PARAM)
    assert moved is not first
    assert moved.filled(CLICK_ID)["Location"] == f"https://b.example/?{PARAM}={CLICK_ID}"
    assert redirects.answer(shop, "https://b.example/", "other") is not moved


@pytest.mark.parametrize(
    "headers",
    [{"Location": "https://a.example/"}, {"Location": SLOT + SLOT}, {"A": SLOT, "B": SLOT}],
)
def test_a_template_holds_exactly_one_slot(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="slot"):
        TemplatedAnswer(302, headers)


def test_a_template_refuses_control_characters() -> None:
    with pytest.raises(ValueError, match="control character"):
        TemplatedAnswer(302, {"Location": "https://a.example/?" + SLOT + "\r\nSet-Cookie: x"})


# --- the templated answer on the wire, against aiohttp's --------------------------------------

LANDING = "https://shop.example/é?utm=1&adt_click=old#reviews"
REDIRECT = ClickIdRedirects(8, {"Cache-Control": NO_CACHE}).answer(
    parse_program(program("shop")), LANDING, PARAM
)


async def _templated(request: web.Request) -> web.StreamResponse:
    return REDIRECT.respond(request, request.query["id"])


async def _plain(request: web.Request) -> web.StreamResponse:
    location = rewritten(LANDING).replace(CLICK_ID, request.query["id"])
    return web.Response(status=302, headers={"Location": location, "Cache-Control": NO_CACHE})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/templated", _templated)
    app.router.add_get("/plain", _plain)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


async def _exchange(server: TestServer, raw: bytes) -> bytes:
    assert server.port is not None
    return await raw_exchange(server.port, raw)


def _without_date(response: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", response)


@pytest.mark.parametrize(
    ("version", "extra", "method"),
    [
        ("1.1", "", "GET"),
        ("1.0", "", "GET"),
        ("1.1", "Connection: close\r\n", "GET"),
        ("1.0", "Connection: keep-alive\r\n", "GET"),
        ("1.1", "", "HEAD"),
    ],
    ids=["keep-alive", "http/1.0", "connection-close", "http/1.0-keep-alive", "head"],
)
async def test_the_templated_redirect_is_what_aiohttp_would_have_sent(
    server: TestServer, version: str, extra: str, method: str
) -> None:
    request = f"{method} /PATH?id={CLICK_ID} HTTP/{version}\r\nHost: t\r\n{extra}\r\n"
    templated = await _exchange(server, request.replace("PATH", "templated").encode())
    plain = await _exchange(server, request.replace("PATH", "plain").encode())
    assert _without_date(templated) == _without_date(plain)
    location = f"Location: {rewritten(LANDING)}\r\n".encode()
    assert templated.startswith(f"HTTP/{version} 302 Found\r\n".encode() + location)


async def test_pipelined_clicks_get_their_own_ids_in_order(server: TestServer) -> None:
    ids = [f"{n:032x}" for n in range(4)]
    raw = b"".join(f"GET /templated?id={i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i in ids)
    received = await _exchange(server, raw)
    locations = re.findall(rb"Location: ([^\r]*)\r\n", received)
    assert [location.decode() for location in locations] == [
        rewritten(LANDING).replace(CLICK_ID, i) for i in ids
    ]


# --- clicks on a real tracker ----------------------------------------------------------------

SHOP_URL = "https://shop.example/p?utm_source=news&adt_click=stale#reviews"
PROGRAMS = [
    program("shop", landing_url=SHOP_URL, click_id_param=PARAM, attribution_window_days=7),
    program("shop-default", landing_url="https://shop.example/d", click_id_param="cid"),
    program("shop-off", valid=False, click_id_param=PARAM),
    program("plain", landing_url="https://plain.example/?a=1#f"),
]


def _click_id_in(location: str, param: str = PARAM) -> str:
    values = [value for name, value in parse_qsl(urlsplit(location).query) if name == param]
    assert len(values) == 1, location
    assert HEX32.fullmatch(values[0]), location
    return values[0]


@pytest.mark.usefixtures("redis_proc")
@pytest.mark.parametrize(
    "settings",
    [{}, {"DURABILITY": "write-ahead"}, {"DUPLICATE_CLICK_SECONDS": "0"}],
    ids=["duplicate-check-after-the-answer", "write-ahead", "no-duplicate-check"],
)
async def test_a_click_carries_its_events_message_id_to_the_landing_page(
    start_tracker: StartTracker,
    redis_url: str,
    kinesalite_url: str,
    event_stream: str,
    settings: dict[str, str],
) -> None:
    """Whenever the click's event is built (after the duplicate check, awaited in write-ahead
    mode, or at once without it), its message_id is the click id of its redirect."""
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker(**settings)
    locations = []
    for program_id in ("shop", "shop", "shop-default"):
        response = await client.get(
            "/v1/click", params={"program": program_id}, allow_redirects=False
        )
        assert response.status == 302
        assert response.headers["Cache-Control"] == NO_CACHE
        locations.append(response.headers["Location"])
    ids = [
        _click_id_in(locations[0]),
        _click_id_in(locations[1]),
        _click_id_in(locations[2], "cid"),
    ]
    assert len(set(ids)) == 3
    assert locations[0] == f"https://shop.example/p?utm_source=news&adt_click={ids[0]}#reviews"
    assert locations[2] == f"https://shop.example/d?cid={ids[2]}"
    events = {e.message_id: e for e in await wait_for_events(kinesalite_url, event_stream, 3)}
    assert set(events) == set(ids)
    assert [events[i].attribution_window_days for i in ids] == [7, 7, 30]
    assert all(events[i].event_type == pb.CLICK and events[i].validation == pb.OK for i in ids)
    assert all(PARAM not in events[i].params for i in ids)


@pytest.mark.usefixtures("redis_proc")
@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ({"gdpr": "1"}, {}),
        ({"gdpr": "1", "gdpr_consent": "not-a-tc-string"}, {}),
        ({}, {"Sec-GPC": "1"}),
        ({}, {"DNT": "1"}),
    ],
    ids=["gdpr-no-string", "gdpr-bad-string", "sec-gpc", "dnt"],
)
async def test_without_consent_the_landing_url_is_unchanged_and_the_window_zero(
    start_tracker: StartTracker,
    redis_url: str,
    kinesalite_url: str,
    event_stream: str,
    query: dict[str, str],
    headers: dict[str, str],
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker()
    response = await client.get(
        "/v1/click", params={"program": "shop", **query}, headers=headers, allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == SHOP_URL
    [event] = await wait_for_events(kinesalite_url, event_stream, 1)
    assert (event.event_type, event.attribution_window_days) == (pb.CLICK, 0)
    assert event.consent == pb.CONSENT_DENIED or event.gpc
    assert HEX32.fullmatch(event.message_id)


@pytest.mark.usefixtures("redis_proc")
async def test_programs_without_click_id_param_or_not_valid_are_unchanged(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker(CLICK_FALLBACK_URL="https://fallback.example/?from=t#x")
    for program_id, location in (
        ("plain", "https://plain.example/?a=1#f"),
        ("shop-off", "https://fallback.example/?from=t#x"),
        ("nope", "https://fallback.example/?from=t#x"),
    ):
        response = await client.get(
            "/v1/click", params={"program": program_id}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (302, location)
    events = await wait_for_events(kinesalite_url, event_stream, 3)
    assert sorted(e.programid for e in events) == ["nope", "plain", "shop-off"]
    assert all(e.attribution_window_days == 0 for e in events)


@pytest.mark.usefixtures("redis_proc")
async def test_head_http_1_0_and_connection_close_get_the_same_location(
    start_tracker: StartTracker, redis_url: str, kinesalite_url: str, event_stream: str
) -> None:
    await write_programs(redis_url, PROGRAMS)
    client = await start_tracker()
    query = {"program": "shop"}
    answers = [
        await client.get("/v1/click", params=query, allow_redirects=False),
        await client.head("/v1/click", params=query, allow_redirects=False),
        await client.get(
            "/v1/click", params=query, allow_redirects=False, headers={"Connection": "close"}
        ),
    ]
    locations = [response.headers["Location"] for response in answers]
    assert [response.status for response in answers] == [302] * len(answers)
    assert client.server.port is not None
    http_1_0 = b"GET /v1/click?program=shop HTTP/1.0\r\nHost: t\r\n\r\n"
    answer = await raw_exchange(client.server.port, http_1_0)
    assert answer.startswith(b"HTTP/1.0 302 Found\r\n")
    locations += [m.decode() for m in re.findall(rb"\r\nLocation: ([^\r]*)\r\n", answer)]
    assert len(locations) == 4
    ids = []
    for location in locations:
        click_id = _click_id_in(location)
        assert location == f"https://shop.example/p?utm_source=news&adt_click={click_id}#reviews"
        ids.append(click_id)
    events = await wait_for_events(kinesalite_url, event_stream, len(ids))
    assert sorted(e.message_id for e in events) == sorted(ids)
    assert all(e.attribution_window_days == 7 for e in events)
