"""What an event may hold about its client, per consent state (tracker.privacy.client_fields), and
the referer's minimisation. Pure logic: the day's secrets come from a stand-in dict."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.support.facts import program_of, request_facts
from tests.support.tcf_strings import tc_string
from tracker.privacy.client_fields import (
    MAX_ADDRESSES,
    MAX_CLIENTS,
    MAX_PAGES,
    MAX_USER_AGENT,
    ClientFields,
    visitor_id,
)
from tracker.privacy.consent import ConsentDecider
from tracker.privacy.keys import user_key
from tracker.privacy.referer import MAX_AUTHORITY, MAX_PARSED, MAX_REFERER, minimised_referer
from tracker.schema.tracking.v1 import tracking_pb2 as pb

HEX32 = re.compile(r"[0-9a-f]{32}")
VENDOR = 755
USER_ID_KEY = b"k" * 32
DAY = 20_000
ADDRESS = "198.51.100.23"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Probe/1.0"
REFERER = "https://news.example/articles/1?email=probe%40example.com#top"
GRANTED = tc_string(purposes={1, 7}, vendors={VENDOR})
DENIED = tc_string(purposes={1}, vendors={VENDOR})  # purpose 7 missing


class Secrets:
    """The part of DailySecrets that ClientFields uses."""

    def __init__(self) -> None:
        self.by_day: dict[int, bytes] = {DAY: b"s" * 32}
        self.wanted = 0

    def for_day(self, day: int) -> bytes | None:
        return self.by_day.get(day)

    def fetch_soon(self) -> None:
        self.wanted += 1


def make_fields(user_id_key: bytes | None = USER_ID_KEY) -> tuple[ClientFields, Secrets]:
    secrets = Secrets()
    fields = ClientFields(ConsentDecider(VENDOR), secrets, user_id_key)  # type: ignore[arg-type]
    return fields, secrets


def client_event(
    fields: ClientFields,
    *,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    address: str | None = ADDRESS,
    customer_id: int = 42,
    day: int = DAY,
) -> pb.TrackingEvent:
    facts = request_facts(
        program=program_of(customer_id),
        query=query,
        headers={"User-Agent": AGENT, "Referer": REFERER, **(headers or {})},
        address=address,
        day=day,
    )
    data = fields.fragment(facts)
    return pb.TrackingEvent.FromString(data)


def test_no_gdpr_keeps_the_minimised_client_and_a_pseudonym() -> None:
    event = client_event(make_fields()[0], query={"uid": "user-1"})
    assert event.consent == pb.CONSENT_NOT_APPLICABLE
    assert event.user_agent == AGENT
    assert event.client_ip_anonymized == "198.51.100.0"
    assert event.referer == "https://news.example/articles/1"
    assert HEX32.fullmatch(event.visitor_id)
    assert event.user_key == user_key(USER_ID_KEY, "user-1")
    assert event.gpc is False


def test_granted_consent_keeps_what_not_applicable_keeps() -> None:
    fields = make_fields()[0]
    granted = client_event(fields, query={"gdpr": "1", "gdpr_consent": GRANTED, "uid": "u"})
    plain = client_event(fields, query={"uid": "u"})
    assert granted.consent == pb.CONSENT_GRANTED
    granted.consent = plain.consent
    assert granted == plain


@pytest.mark.parametrize(
    "query",
    [
        {"gdpr": "1", "gdpr_consent": DENIED},
        {"gdpr": "1"},
        {"gdpr": "1", "gdpr_consent": "not a tc string"},
        {"gdpr": "true", "gdpr_consent": GRANTED},
    ],
)
def test_denied_consent_keeps_no_identifier(query: dict[str, str]) -> None:
    event = client_event(make_fields()[0], query={**query, "uid": "user-1"})
    assert event.consent == pb.CONSENT_DENIED
    assert event.user_agent == ""
    assert event.client_ip_anonymized == ""
    assert event.visitor_id == ""
    assert event.user_key == ""
    assert event.referer == "https://news.example"  # the site that showed the ad, nothing more
    assert event.gpc is False


@pytest.mark.parametrize("header", [{"Sec-GPC": "1"}, {"DNT": "1"}])
@pytest.mark.parametrize("gdpr", [{}, {"gdpr": "1", "gdpr_consent": GRANTED}])
def test_gpc_and_dnt_withhold_identifiers_whatever_the_consent(
    header: dict[str, str], gdpr: dict[str, str]
) -> None:
    event = client_event(make_fields()[0], query={**gdpr, "uid": "u"}, headers=header)
    assert event.gpc is True
    assert event.consent == (pb.CONSENT_GRANTED if gdpr else pb.CONSENT_NOT_APPLICABLE)
    assert (event.user_agent, event.client_ip_anonymized, event.visitor_id, event.user_key) == (
        "",
        "",
        "",
        "",
    )


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_other_gpc_and_dnt_values_change_nothing(value: str) -> None:
    event = client_event(make_fields()[0], headers={"Sec-GPC": value, "DNT": value})
    assert event.gpc is False
    assert event.visitor_id != ""


def test_visitor_id_is_per_client_customer_and_day() -> None:
    fields, secrets = make_fields()
    first = client_event(fields).visitor_id
    assert client_event(fields).visitor_id == first
    assert client_event(fields, customer_id=43).visitor_id != first
    assert client_event(fields, headers={"User-Agent": "Other/2.0"}).visitor_id != first
    assert client_event(fields, address="198.51.100.24").visitor_id != first
    secrets.by_day[DAY + 1] = b"t" * 32
    assert client_event(fields, day=DAY + 1).visitor_id not in ("", first)
    # the same day's secret gives the same pseudonym again, after the memo forgot
    assert client_event(fields).visitor_id == first
    assert first == visitor_id(b"s" * 32, ADDRESS, AGENT, 42)


def test_no_secret_means_no_visitor_id_and_a_fetch_request() -> None:
    fields, secrets = make_fields()
    secrets.by_day.clear()
    assert client_event(fields).visitor_id == ""
    assert client_event(fields).visitor_id == ""
    assert secrets.wanted == 2
    assert fields.visitor_id_unavailable == 2
    secrets.by_day[DAY] = b"s" * 32  # the background task got it: not memoized without it
    assert client_event(fields).visitor_id == visitor_id(b"s" * 32, ADDRESS, AGENT, 42)


def test_unknown_program_or_address_gets_no_visitor_id() -> None:
    fields, secrets = make_fields()
    assert client_event(fields, customer_id=0).visitor_id == ""
    assert client_event(fields, address=None).visitor_id == ""
    too_long = client_event(fields, address="1" * 65)  # a forged X-Forwarded-For, say
    assert (too_long.visitor_id, too_long.client_ip_anonymized) == ("", "")
    assert "1" * 65 not in fields._addresses
    assert secrets.wanted == 0


def test_uid_needs_the_key_and_a_bounded_value() -> None:
    assert client_event(make_fields(None)[0], query={"uid": "u"}).user_key == ""
    fields = make_fields()[0]
    assert client_event(fields, query={"uid": "x" * 257}).user_key == ""
    assert client_event(fields, query={"uid": ""}).user_key == ""
    assert client_event(fields, query={"uid": "x" * 256}).user_key == user_key(
        USER_ID_KEY, "x" * 256
    )


def test_user_agent_is_cut_and_any_text_survives() -> None:
    fields = make_fields()[0]
    assert client_event(fields, headers={"User-Agent": "u" * 5000}).user_agent == (
        "u" * MAX_USER_AGENT
    )
    assert client_event(fields, headers={"User-Agent": "Bj\u00f6rk \U0001f600"}).user_agent == (
        "Bj\u00f6rk \U0001f600"
    )


def test_memos_stay_bounded() -> None:
    fields = make_fields()[0]
    for i in range(MAX_CLIENTS * 2 + 5):
        assert client_event(fields, headers={"User-Agent": f"agent-{i}"}).user_agent == f"agent-{i}"
    for i in range(MAX_ADDRESSES + 5):
        assert client_event(fields, address=f"10.0.{i % 256}.{i // 256}").visitor_id
    assert len(fields._observed) <= MAX_CLIENTS
    assert len(fields._pages) <= MAX_PAGES
    assert len(fields._addresses) <= MAX_ADDRESSES


def test_requests_are_counted_by_consent_and_opt_out() -> None:
    fields = make_fields()[0]
    client_event(fields)
    client_event(fields, query={"gdpr": "1"})
    client_event(fields, query={"gdpr": "1", "gdpr_consent": GRANTED}, headers={"DNT": "1"})
    assert fields.by_consent[pb.CONSENT_NOT_APPLICABLE] == 1
    assert fields.by_consent[pb.CONSENT_DENIED] == 1
    assert fields.by_consent[pb.CONSENT_GRANTED] == 1
    assert fields.opted_out == 1


# --- the referer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("referer", "kept", "origin"),
    [
        ("https://news.example/a/b?q=1#f", "https://news.example/a/b", "https://news.example"),
        ("http://user:pw@site.example:8080/p", "http://site.example:8080/p", None),
        ("https://[2001:db8::1]/x?y", "https://[2001:db8::1]/x", "https://[2001:db8::1]"),
        ("HTTPS://News.Example/Path", "https://news.example/Path", "https://news.example"),
        ("android-app://com.example.app/", "android-app://com.example.app/", None),
        ("", "", ""),
        ("/relative/path", "", ""),
        ("not a url", "", ""),
        ("https://bad\x00host/", "", ""),
        ("https://host:99999/", "", ""),
        ("https://[::1/", "", ""),
        # An authority longer than any host with a port: refused before parsing it.
        (f"https://{'h' * (MAX_AUTHORITY - 5)}:8080/p", f"https://{'h' * 295}:8080/p", None),
        (f"https://{'h' * (MAX_AUTHORITY + 1)}/p", "", ""),
        (f"https://host:{'1' * 2000}/p", "", ""),
        (f"https://[{'1' * 2000}]/p", "", ""),
        (f"https://{'u' * 400}@host/p", "", ""),
    ],
)
def test_referer_keeps_scheme_host_and_path_only(
    referer: str, kept: str, origin: str | None
) -> None:
    assert minimised_referer(referer) == kept
    if origin is not None:
        assert minimised_referer(referer, origin_only=True) == origin


@example(host="h" * (MAX_AUTHORITY - 5) + ":8080", path="p" * 3000)  # reaches past the cut
@given(
    host=st.sampled_from(["news.example", "h" * (MAX_AUTHORITY - 5) + ":8080", "[2001:db8::1]"]),
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=3000),
)
def test_only_the_first_max_parsed_characters_are_parsed_and_they_hold_what_is_kept(
    host: str, path: str
) -> None:
    """What is kept (scheme, an authority of at most MAX_AUTHORITY, the path, cut to
    MAX_REFERER) lies within the first MAX_PARSED characters: parsing no more changes nothing."""
    referer = f"https://{host}/{path}"
    whole = urlsplit(referer)
    if whole.hostname is None:
        return
    expected = f"https://{whole.netloc}{whole.path}"[:MAX_REFERER].replace(
        whole.netloc, whole.netloc.lower(), 1
    )
    assert len(referer) > MAX_PARSED or len(referer) <= MAX_PARSED
    assert minimised_referer(referer) == expected


@given(st.text(max_size=3000))
def test_referer_minimisation_never_raises_and_is_bounded(referer: str) -> None:
    for origin_only in (False, True):
        kept = minimised_referer(referer, origin_only=origin_only)
        assert len(kept) <= MAX_REFERER
        assert "?" not in kept
        assert "#" not in kept
        assert "@" not in kept.split("/", 3)[2] if kept.count("/") >= 2 else True


_ANY = st.text(max_size=600)


@given(
    gdpr=st.none() | st.sampled_from(["0", "1", "true"]) | _ANY,
    consent=st.none() | st.just(GRANTED) | _ANY,
    uid=st.none() | _ANY,
    agent=_ANY,
    referer=st.sampled_from([REFERER, ""]) | _ANY,
    gpc=st.sampled_from(["1", "0", ""]) | _ANY,
    address=st.none() | st.sampled_from([ADDRESS, "2001:db8::1", ""]) | st.text(max_size=80),
    customer_id=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_any_request_gives_a_bounded_event_fragment(
    gdpr: str | None,
    consent: str | None,
    uid: str | None,
    agent: str,
    referer: str,
    gpc: str,
    address: str | None,
    customer_id: int,
) -> None:
    query = {k: v for k, v in {"gdpr": gdpr, "gdpr_consent": consent, "uid": uid}.items() if v}
    headers = {"User-Agent": agent, "Referer": referer, "Sec-GPC": gpc}
    event = client_event(
        SHARED_FIELDS, query=query, headers=headers, address=address, customer_id=customer_id
    )
    assert len(event.user_agent) <= MAX_USER_AGENT
    assert len(event.referer) <= MAX_REFERER
    assert len(event.visitor_id) in (0, 32)
    assert len(event.user_key) in (0, 32)
    if event.consent == pb.CONSENT_DENIED or event.gpc:
        assert (event.user_agent, event.visitor_id, event.user_key) == ("", "", "")


SHARED_FIELDS = make_fields()[0]
