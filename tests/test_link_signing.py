"""Signed click links: the canonical form, the verifier, CLICK_SIGNING_KEYS and `links sign`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
from urllib.parse import parse_qsl, quote, quote_from_bytes, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import assume, given
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy
from yarl import URL

from tracker.cli import main
from tracker.integrity import signing
from tracker.integrity.signing import (
    CLICK_PATH,
    MAX_MESSAGE_BYTES,
    MAX_PARAMS,
    MAX_QUOTED_BYTES,
    LinkVerifier,
    SigningKey,
    canonical_message,
    parse_signing_keys,
    sign_query,
)
from tracker.schema.tracking.v1 import tracking_pb2 as pb

NEW = SigningKey("k1", bytes(range(32)))
OLD = SigningKey("k0", bytes(range(100, 132)))
NOW = 1_700_000_000
EXP = NOW + 3600
PARAMS = [("program", "demo-shoes"), ("campaign", "spring"), ("creative", "c 1/é")]
VERIFIER = LinkVerifier([NEW, OLD])


def as_query(query_string: str) -> MultiDictProxy[str]:
    """What aiohttp's `request.query` holds for this query string (yarl decodes it)."""
    return URL(f"http://tracker.test{CLICK_PATH}?{query_string}").query


def check(query_string: str, now: float = NOW, verifier: LinkVerifier = VERIFIER) -> int:
    return verifier.check(CLICK_PATH, as_query(query_string), now)


def signed(params: list[tuple[str, str]] = PARAMS, key: SigningKey = NEW, exp: int = EXP) -> str:
    return sign_query(CLICK_PATH, params, key, exp)


def b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


# The canonical form, pinned: another system (an ad server) must be able to produce it.


def test_canonical_message_sorts_encoded_pairs_and_leaves_out_sig_and_consent() -> None:
    pairs = [
        ("sub", "é"),
        ("program", "demo"),
        ("sub", "a b"),
        ("sig", "x"),
        ("gdpr", "1"),
        ("gdpr_consent", "CP"),
        ("exp", "9"),
        ("kid", "k1"),
    ]
    assert canonical_message(CLICK_PATH, pairs) == (
        "/v1/click\nexp=9&kid=k1&program=demo&sub=%C3%A9&sub=a%20b"
    )


def test_signature_is_unpadded_base64url_hmac_sha256_of_the_canonical_message() -> None:
    query = signed([("program", "demo-shoes"), ("sub", "a b"), ("sub", "é")], exp=1_700_000_000)
    assert query == (
        "program=demo-shoes&sub=a%20b&sub=%C3%A9&exp=1700000000&kid=k1"
        "&sig=o_VFf60XqHkxJ5TVbtISdkpS5HTM9gie3CTFqXxZUms"
    )
    # The same by hand, from the spec in the module docstring.
    message = "/v1/click\nexp=1700000000&kid=k1&program=demo-shoes&sub=%C3%A9&sub=a%20b"
    digest = hmac.new(NEW.secret, message.encode(), hashlib.sha256).digest()
    assert query.endswith("&sig=" + base64.urlsafe_b64encode(digest).decode().rstrip("="))


# Verification.


def test_a_signed_link_verifies() -> None:
    assert check(signed()) == pb.IVT_NONE


def test_a_link_signed_with_an_old_key_verifies_while_that_key_is_configured() -> None:
    assert check(signed(key=OLD)) == pb.IVT_NONE
    assert check(signed(key=OLD), verifier=LinkVerifier([NEW])) == pb.IVT_BAD_SIGNATURE


def test_an_unknown_kid_or_a_known_kid_with_another_secret_is_a_bad_signature() -> None:
    assert check(signed(key=SigningKey("k9", NEW.secret))) == pb.IVT_BAD_SIGNATURE
    assert check(signed(key=SigningKey("k1", OLD.secret))) == pb.IVT_BAD_SIGNATURE


def test_a_link_is_expired_from_its_exp_second_on() -> None:
    assert check(signed(), now=EXP - 0.001) == pb.IVT_NONE
    assert check(signed(), now=EXP) == pb.IVT_EXPIRED_LINK
    assert check(signed(), now=EXP + 86_400) == pb.IVT_EXPIRED_LINK


def test_an_expired_link_with_a_bad_signature_is_a_bad_signature() -> None:
    tampered = signed().replace("campaign=spring", "campaign=summer")
    assert check(tampered, now=EXP + 1) == pb.IVT_BAD_SIGNATURE


def test_an_extended_expiry_is_a_bad_signature() -> None:
    assert check(signed().replace(f"exp={EXP}", f"exp={EXP + 86_400}")) == pb.IVT_BAD_SIGNATURE


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda q: q.replace("campaign=spring", "campaign=summer"), id="changed"),
        pytest.param(lambda q: q.replace("program=demo-shoes", "program=demo-boots"), id="program"),
        pytest.param(lambda q: q + "&url=https://evil.example", id="appended-url"),
        pytest.param(lambda q: q + "&url=https%3A%2F%2Fevil.example", id="appended-encoded"),
        pytest.param(lambda q: q + "&campaign=", id="appended-empty"),
        pytest.param(lambda q: q.replace("&campaign=spring", ""), id="removed"),
        pytest.param(lambda q: q.replace("&campaign=spring", "&campaign="), id="emptied"),
        pytest.param(lambda q: q + "&campaign=spring", id="duplicated-pair"),
        pytest.param(lambda q: q + "&campaign=autumn", id="duplicated-key"),
        pytest.param(lambda q: q.replace("campaign=", "Campaign="), id="key-case"),
        pytest.param(lambda q: q.replace("kid=k1", "kid=k0"), id="other-kid"),
    ],
)
def test_any_change_to_a_signed_parameter_is_a_bad_signature(tamper: object) -> None:
    assert callable(tamper)
    assert check(tamper(signed())) == pb.IVT_BAD_SIGNATURE


def test_the_signature_is_bound_to_the_path() -> None:
    assert VERIFIER.check("/v1/pixel", as_query(signed()), NOW) == pb.IVT_BAD_SIGNATURE


def test_the_parameter_order_in_the_url_does_not_matter() -> None:
    pairs = list(as_query(signed()).items())
    assert VERIFIER.check(CLICK_PATH, MultiDict(reversed(pairs)), NOW) == pb.IVT_NONE


def test_consent_macros_filled_in_after_signing_still_verify() -> None:
    consented = signed() + "&gdpr=1&gdpr_consent=CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
    assert check(consented) == pb.IVT_NONE
    assert check("gdpr=0&" + signed()) == pb.IVT_NONE


def test_a_link_signed_with_consent_macros_verifies_with_their_values_filled_in() -> None:
    query = signed([*PARAMS, ("gdpr", "${GDPR}"), ("gdpr_consent", "${GDPR_CONSENT_755}")])
    filled = query.replace("%24%7BGDPR%7D", "1").replace("%24%7BGDPR_CONSENT_755%7D", "CPXx")
    assert "gdpr=1&gdpr_consent=CPXx" in filled
    assert check(filled) == pb.IVT_NONE


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("program=demo", id="unsigned"),
        pytest.param("", id="empty"),
        pytest.param(f"program=demo&exp={EXP}&kid=k1", id="no-sig"),
        pytest.param(f"program=demo&exp={EXP}&sig=" + "A" * 43, id="no-kid"),
        pytest.param("program=demo&kid=k1&sig=" + "A" * 43, id="no-exp"),
    ],
)
def test_a_missing_signature_field_is_a_bad_signature(query: str) -> None:
    assert check(query) == pb.IVT_BAD_SIGNATURE


def test_a_missing_field_of_a_signed_link_is_a_bad_signature() -> None:
    query = signed()
    for field in ("sig", "kid", "exp"):
        pairs = [(k, v) for k, v in as_query(query).items() if k != field]
        assert VERIFIER.check(CLICK_PATH, MultiDict(pairs), NOW) == pb.IVT_BAD_SIGNATURE, field


@pytest.mark.parametrize(
    "exp",
    ["", "-1", "+1700003600", " 1700003600", "1700003600 ", "1.7e9", "0x10", "1_700_003_600",
     "١٧٠٠٠٠٣٦٠٠", "1" * 13, "nan"],
)  # fmt: skip
def test_a_malformed_exp_is_a_bad_signature(exp: str) -> None:
    pairs = [(k, exp if k == "exp" else v) for k, v in as_query(signed()).items()]
    assert VERIFIER.check(CLICK_PATH, MultiDict(pairs), NOW) == pb.IVT_BAD_SIGNATURE


@pytest.mark.parametrize("exp", ["١٧٠٠٠٠٣٦٠٠", "1" * 13, "+1700003600", "1_700_003_600"])
def test_a_malformed_exp_is_refused_even_when_the_signature_covers_it(exp: str) -> None:
    pairs = [("program", "demo"), ("exp", exp), ("kid", "k1")]
    message = canonical_message(CLICK_PATH, pairs).encode()
    digest = hmac.new(NEW.secret, message, hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    query = MultiDict([*pairs, ("sig", sig)])
    assert VERIFIER.check(CLICK_PATH, query, NOW) == pb.IVT_BAD_SIGNATURE
    query["exp"] = str(EXP)  # the same, well-formed, but not what was signed
    assert VERIFIER.check(CLICK_PATH, query, NOW) == pb.IVT_BAD_SIGNATURE


def test_an_exp_with_leading_zeros_is_read_as_a_number_when_it_was_signed_so() -> None:
    query = sign_query(CLICK_PATH, PARAMS, NEW, 0)  # "0": the epoch, long expired
    assert check(query) == pb.IVT_EXPIRED_LINK


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda sig: sig[:-1], id="short"),
        pytest.param(lambda sig: sig + "A", id="long"),
        pytest.param(lambda sig: sig + "=", id="padded"),
        pytest.param(lambda sig: sig.replace("_", "/").replace("-", "+"), id="standard-alphabet"),
        pytest.param(lambda sig: sig[:-1] + "é", id="non-ascii"),
        pytest.param(lambda sig: "", id="empty"),
        pytest.param(lambda sig: base64.b16encode(b"x" * 32).decode(), id="hex"),
    ],
)
def test_a_malformed_sig_is_a_bad_signature(mangle: object) -> None:
    assert callable(mangle)
    pairs = [(k, mangle(v) if k == "sig" else v) for k, v in as_query(signed()).items()]
    assert VERIFIER.check(CLICK_PATH, MultiDict(pairs), NOW) == pb.IVT_BAD_SIGNATURE


def test_a_non_canonical_base64_of_the_right_digest_is_refused() -> None:
    query = as_query(signed())
    sig = query["sig"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # The last character carries 4 bits of the digest and 2 unused bits, which must be zero.
    twin = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(sig + "=")
    pairs = [(k, twin if k == "sig" else v) for k, v in query.items()]
    assert VERIFIER.check(CLICK_PATH, MultiDict(pairs), NOW) == pb.IVT_BAD_SIGNATURE


@pytest.mark.parametrize("field", ["sig", "kid", "exp"])
def test_a_repeated_signature_field_is_a_bad_signature(field: str) -> None:
    query = as_query(signed())
    assert check(f"{signed()}&{field}={query[field]}") == pb.IVT_BAD_SIGNATURE


def test_more_than_64_parameters_are_refused_before_hashing() -> None:
    most = [("program", "demo")] + [(f"p{i}", "v") for i in range(MAX_PARAMS - 4)]
    assert check(signed(most)) == pb.IVT_NONE
    assert check(signed(most) + "&gdpr=1") == pb.IVT_BAD_SIGNATURE  # 65 parameters
    with pytest.raises(ValueError, match="more than 64"):
        signed([*most, ("one", "more")])


def test_a_canonical_message_over_8_kib_is_refused() -> None:
    fits = [("program", "demo"), ("v", "x" * (MAX_MESSAGE_BYTES - 60))]
    assert len(canonical_message(CLICK_PATH, [*fits, ("exp", str(EXP)), ("kid", "k1")])) > 8000
    assert check(signed(fits)) == pb.IVT_NONE
    with pytest.raises(ValueError, match="at most 8192"):
        signed([("program", "demo"), ("v", "é" * (MAX_MESSAGE_BYTES // 6))])
    # Unsigned consent parameters do not count towards the bound.
    assert check(signed(fits) + "&gdpr_consent=" + "C" * 4000) == pb.IVT_NONE
    assert check(signed(fits).replace("&v=", "&v=" + "x" * 60)) == pb.IVT_BAD_SIGNATURE
    # Short as text, long once encoded: refused after encoding, still before hashing.
    widened = MultiDict([*as_query(signed()).items(), ("w", "é" * 1400)])
    assert VERIFIER.check(CLICK_PATH, widened, NOW) == pb.IVT_BAD_SIGNATURE


def test_at_most_max_quoted_bytes_of_parameters_may_need_percent_encoding() -> None:
    # "!" needs encoding: each value counts whole, its plain characters too.
    fits = [("program", "demo"), ("a", "!" * (MAX_QUOTED_BYTES - 100)), ("b", "x!" * 50)]
    assert check(signed(fits)) == pb.IVT_NONE
    one_more = [*fits[:2], ("b", "x!" * 50 + "y")]
    with pytest.raises(ValueError, match=f"more than {MAX_QUOTED_BYTES} bytes"):
        signed(one_more)
    # The same text needs no encoding when it is all unreserved characters: no such bound.
    plain = [("program", "demo"), ("a", "x" * (4 * MAX_QUOTED_BYTES))]
    assert check(signed(plain)) == pb.IVT_NONE


@pytest.mark.parametrize(
    ("value", "most_encoded"),
    [
        pytest.param("!" * 120, 0, id="all to encode: refused from the count of them"),
        pytest.param("x" * 119 + "!", MAX_QUOTED_BYTES, id="one each: refused at the bound"),
    ],
)
def test_a_hostile_click_stops_being_encoded_at_the_bound(
    monkeypatch: pytest.MonkeyPatch, value: str, most_encoded: int
) -> None:
    """60 parameters of 120 characters that need encoding, and a signature that cannot match:
    refused before MAX_QUOTED_BYTES more have been through quote(), the rest never looked at."""
    encoded: list[int] = []

    def counting(data: bytes, safe: str = "") -> str:
        encoded.append(len(data))
        return quote_from_bytes(data, safe)

    monkeypatch.setattr(signing, "quote_from_bytes", counting)
    pairs = [("program", "demo"), *((f"a{n:02d}", value) for n in range(60))]
    query = MultiDict([*pairs, ("exp", str(EXP)), ("kid", NEW.kid), ("sig", "A" * 43)])
    assert VERIFIER.check(CLICK_PATH, query, NOW) == pb.IVT_BAD_SIGNATURE
    assert sum(encoded) <= most_encoded
    assert len(encoded) < 10


def test_text_that_is_not_unicode_is_a_bad_signature() -> None:
    query = MultiDict([*as_query(signed()).items(), ("x", "\ud800")])
    assert VERIFIER.check(CLICK_PATH, query, NOW) == pb.IVT_BAD_SIGNATURE
    with pytest.raises(ValueError, match="surrogate"):
        signed([("program", "\udcff")])


@pytest.mark.parametrize("name", ["sig", "exp", "kid"])
def test_sign_query_refuses_the_signature_parameters(name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}' is reserved"):
        signed([("program", "demo"), (name, "1")])


@pytest.mark.parametrize("exp", [-1, 10**12])
def test_sign_query_refuses_an_expiry_the_verifier_cannot_read(exp: int) -> None:
    with pytest.raises(ValueError, match="expiry"):
        signed(exp=exp)


def test_a_verifier_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        LinkVerifier([])


# CLICK_SIGNING_KEYS.


def test_signing_keys_parse_standard_and_urlsafe_base64_with_or_without_padding() -> None:
    secret = bytes([0xFB, 0xFF] * 12)  # encodes with + and / (standard) or - and _ (urlsafe)
    standard = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode()
    assert "+" in standard
    assert "-" in urlsafe
    text = f"new.2024-06:{standard}, old_1:{urlsafe.rstrip('=')}"
    assert parse_signing_keys(text) == (
        SigningKey("new.2024-06", secret),
        SigningKey("old_1", secret),
    )


SECRET_16 = b64(b"s3cr3t-16-bytes!")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no keys"),
        (" ", "no keys"),
        (f"k1:{SECRET_16},", "entry 2 is empty"),
        (f"k1:{SECRET_16},,k2:{SECRET_16}", "entry 2 is empty"),
        (f",k1:{SECRET_16}", "entry 1 is empty"),
        (SECRET_16, "entry 1 is not kid:base64secret"),
        (f"k1:{SECRET_16},k1:{SECRET_16}", "entry 2: key id 'k1' appears twice"),
        (f":{SECRET_16}", "entry 1: key id is not"),
        (f"my key:{SECRET_16}", "entry 1: key id is not"),
        (f"{'k' * 33}:{SECRET_16}", "entry 1: key id is not"),
        (f"ké:{SECRET_16}", "entry 1: key id is not"),
        ("k1:", "entry 1 (kid 'k1'): secret is 0 bytes, at least 16 needed"),
        (f"k1:{b64(b'fifteen-bytes!!')}", "entry 1 (kid 'k1'): secret is 15 bytes"),
        ("k1:not base64 at all!", "entry 1 (kid 'k1'): secret is not base64"),
        ("k1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2Vjc", "secret is not base64"),  # 4n+1 chars
        ("k1:c2VjcmV0c2Vj☃mV0c2VjcmV0c2VjcmV0", "secret is not base64"),
    ],
)
def test_bad_signing_keys_name_the_problem_in_one_line(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$") as raised:
        parse_signing_keys(text)
    assert problem in str(raised.value)


HUNTER = b64(b"hunter2?hunter2>hunter2")  # has + and /: not a valid kid
SHORT_HUNTER = b64(b"hunter2")


@pytest.mark.parametrize(
    "text",
    [
        f"k1:{SHORT_HUNTER}",  # short
        f"k1:{HUNTER}!!",  # not base64
        f"k1:{HUNTER},k1:{HUNTER}",  # duplicate
        HUNTER,  # the kid forgotten
        f"{HUNTER}:k1",  # the two swapped
        f"k 1:{HUNTER}",  # bad kid
        f"k1:{HUNTER},,k2:{HUNTER}",  # empty entry
    ],
)
def test_signing_key_errors_never_show_a_secret(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S") as raised:
        parse_signing_keys(text)
    assert "aHVudGVy" not in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_signing_key_never_shows_its_secret() -> None:
    key = SigningKey("k1", b"do-not-print-me-ever")
    for text in (repr(key), str(key), f"{key}", repr([key]), repr((key,))):
        assert "do-not-print" not in text
        assert "k1" in text


# The command.

ENV_KEYS = f"k1:{b64(NEW.secret)},k0:{b64(OLD.secret)}"


def run_sign(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    keys: str | None = ENV_KEYS,
) -> tuple[int, str, str]:
    if keys is None:
        monkeypatch.delenv("CLICK_SIGNING_KEYS", raising=False)
    else:
        monkeypatch.setenv("CLICK_SIGNING_KEYS", keys)
    try:
        code = main(["links", "sign", *args], clock=lambda: NOW + 0.75)
    except SystemExit as exit_:  # argparse refuses an argument
        code = exit_.code if isinstance(exit_.code, int) else -1
    out, err = capsys.readouterr()
    return code, out, err


def verify_url(url: str, now: float = NOW) -> int:
    """Verify a printed URL the way the tracker would: its query parsed into a MultiDict."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    return VERIFIER.check(CLICK_PATH, MultiDict(pairs), now)


def test_links_sign_prints_a_click_url_that_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--program", "demo-shoes", "--param", "campaign=spring sale", "--param", "x=é&y=1"]
    code, out, err = run_sign(args, capsys, monkeypatch)
    assert (code, err) == (0, "")
    url = out.strip()
    assert out == url + "\n"
    exp = NOW + 2_592_000  # 30 days
    assert url.startswith(
        f"http://127.0.0.1:8080/v1/click?program=demo-shoes&campaign=spring%20sale"
        f"&x=%C3%A9%26y%3D1&exp={exp}&kid=k1&sig="
    )
    assert verify_url(url) == pb.IVT_NONE
    assert VERIFIER.check(CLICK_PATH, URL(url).query, NOW) == pb.IVT_NONE
    assert verify_url(url, now=exp) == pb.IVT_EXPIRED_LINK
    assert URL(url).query.getall("x") == ["é&y=1"]


def test_links_sign_signs_with_the_first_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rotated = f"k0:{b64(OLD.secret)},k1:{b64(NEW.secret)}"
    code, out, _ = run_sign(["--program", "p"], capsys, monkeypatch, keys=rotated)
    assert code == 0
    assert URL(out.strip()).query["kid"] == "k0"
    assert verify_url(out.strip()) == pb.IVT_NONE
    assert LinkVerifier([NEW]).check(CLICK_PATH, URL(out.strip()).query, NOW) == (
        pb.IVT_BAD_SIGNATURE
    )


def test_links_sign_keeps_a_base_url_path_as_an_unsigned_prefix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--program", "p", "--ttl", "60", "--base-url", "https://t.example:8443/track/"]
    code, out, _ = run_sign(args, capsys, monkeypatch)
    assert code == 0
    url = URL(out.strip())
    assert str(url).startswith(f"https://t.example:8443/track/v1/click?program=p&exp={NOW + 60}&")
    # Behind the proxy that strips /track, the tracker sees /v1/click.
    assert VERIFIER.check(CLICK_PATH, url.query, NOW) == pb.IVT_NONE


def test_links_sign_without_keys_exits_2_with_one_line_naming_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for keys in (None, ""):
        code, out, err = run_sign(["--program", "p"], capsys, monkeypatch, keys=keys)
        assert (code, out) == (2, "")
        assert len(err.strip().splitlines()) == 1
        assert "CLICK_SIGNING_KEYS" in err


def test_links_sign_with_bad_keys_exits_2_without_showing_the_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_sign(["--program", "p"], capsys, monkeypatch, keys="k1:c2hvcnRzZWNyZXQ=")
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert "CLICK_SIGNING_KEYS" in err
    assert "c2hvcnRzZWNyZXQ" not in err


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-program"),
        pytest.param(["--program", ""], id="empty-program"),
        pytest.param(["--program", "a/b"], id="bad-program"),
        pytest.param(["--program", "p" * 65], id="long-program"),
        pytest.param(["--program", "p", "--param", "novalue"], id="param-no-equals"),
        pytest.param(["--program", "p", "--param", "=v"], id="param-empty-key"),
        pytest.param(["--program", "p", "--param", "a b=v"], id="param-bad-key"),
        pytest.param(["--program", "p", "--param", f"{'k' * 33}=v"], id="param-long-key"),
        pytest.param(["--program", "p", "--param", "program=q"], id="param-program"),
        pytest.param(["--program", "p", "--param", "sig=x"], id="param-sig"),
        pytest.param(["--program", "p", "--param", "exp=1"], id="param-exp"),
        pytest.param(["--program", "p", "--param", "kid=k0"], id="param-kid"),
        pytest.param(["--program", "p", "--param", "v=\udcff"], id="param-not-utf8"),
        pytest.param(["--program", "p", "--ttl", "0"], id="ttl-zero"),
        pytest.param(["--program", "p", "--ttl", "-60"], id="ttl-negative"),
        pytest.param(["--program", "p", "--ttl", "1.5"], id="ttl-fraction"),
        pytest.param(["--program", "p", "--ttl", "week"], id="ttl-word"),
        pytest.param(["--program", "p", "--ttl", "315360001"], id="ttl-beyond-10-years"),
        pytest.param(["--program", "p", "--base-url", "ftp://t.example"], id="url-ftp"),
        pytest.param(["--program", "p", "--base-url", "t.example"], id="url-no-scheme"),
        pytest.param(["--program", "p", "--base-url", "http://"], id="url-no-host"),
        pytest.param(["--program", "p", "--base-url", "http://t.example/?a=1"], id="url-query"),
        pytest.param(["--program", "p", "--base-url", "http://t.example/?"], id="url-empty-q"),
        pytest.param(["--program", "p", "--base-url", "http://t.example/#x"], id="url-fragment"),
        pytest.param(["--program", "p", "--base-url", "http://u:pw@t.example"], id="url-userinfo"),
        pytest.param(["--program", "p", "--base-url", "http://t.example:99999"], id="url-port"),
        pytest.param(["--program", "p", "--base-url", "http://t.example/a b"], id="url-space"),
        pytest.param(["--program", "p", "--base-url", "http://tëst.example"], id="url-non-ascii"),
        pytest.param(["--program", "p", "--base-url", "javascript:alert(1)"], id="url-js"),
    ],
)
def test_links_sign_refuses_bad_arguments_with_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_sign(args, capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert "error: " in err


def test_links_sign_refuses_a_link_beyond_the_verifiers_bounds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_sign(["--program", "p", "--param", "v=" + "é" * 2000], capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert "at most 8192" in err


def test_links_sign_passes_consent_macros_through_unsigned(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        "--program",
        "p",
        "--param",
        "gdpr=${GDPR}",
        "--param",
        "gdpr_consent=${GDPR_CONSENT_1}",
    ]
    code, out, _ = run_sign(args, capsys, monkeypatch)
    assert code == 0
    filled = out.strip().replace("%24%7BGDPR%7D", "1").replace("%24%7BGDPR_CONSENT_1%7D", "CP")
    assert URL(filled).query["gdpr_consent"] == "CP"
    assert verify_url(filled) == pb.IVT_NONE


def test_the_installed_command_signs_a_link_that_the_tracker_path_verifies() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracker", "links", "sign", "--program", "demo", "--ttl", "600"],
        env={**os.environ, "CLICK_SIGNING_KEYS": ENV_KEYS, "REDIS_URL": "not a url"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # An unrelated bad setting does not stop an offline command.
    assert result.returncode == 0, result.stderr
    url = URL(result.stdout.strip())
    assert abs(int(url.query["exp"]) - (time.time() + 600)) < 30
    assert VERIFIER.check(CLICK_PATH, url.query, time.time()) == pb.IVT_NONE


async def test_a_signed_link_verifies_through_aiohttps_own_request_parsing() -> None:
    async def click(request: web.Request) -> web.Response:
        return web.Response(text=str(VERIFIER.check(request.path, request.query, NOW)))

    app = web.Application()
    app.router.add_get(CLICK_PATH, click)
    params = [*PARAMS, ("q", "a+b c;d=e&f%20"), ("empty", ""), ("emoji", "🙂"), ("q", "~.-_")]
    query = signed(params)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        for suffix, expected in (
            ("", pb.IVT_NONE),
            ("&url=https://evil.example", pb.IVT_BAD_SIGNATURE),
        ):
            url = URL(f"{server.make_url(CLICK_PATH)}?{query}{suffix}", encoded=True)
            async with session.get(url) as response:
                assert await response.text() == str(expected)


# Properties.

TEXT = st.text(st.characters(exclude_categories=()), max_size=24)  # lone surrogates too
NAMES = st.one_of(st.sampled_from(["sig", "kid", "exp", "program", "gdpr", "gdpr_consent"]), TEXT)
VALUES = st.one_of(
    TEXT,
    st.sampled_from(["k1", "k0", str(EXP), "0", "A" * 43, as_query(signed())["sig"]]),
)


@given(st.lists(st.tuples(NAMES, VALUES), max_size=70), st.floats(allow_nan=True))
def test_check_never_raises(pairs: list[tuple[str, str]], now: float) -> None:
    result = VERIFIER.check(CLICK_PATH, MultiDict(pairs), now)
    assert result in (pb.IVT_NONE, pb.IVT_BAD_SIGNATURE, pb.IVT_EXPIRED_LINK)


@given(TEXT, st.lists(st.tuples(NAMES, VALUES), max_size=10))
def test_check_never_raises_on_a_signed_query_with_additions(
    path: str, extra: list[tuple[str, str]]
) -> None:
    pairs = [*as_query(signed()).items(), *extra]
    assert VERIFIER.check(path, MultiDict(pairs), NOW) in (pb.IVT_NONE, pb.IVT_BAD_SIGNATURE)


SIGNABLE_TEXT = st.text(max_size=16)  # valid Unicode: what a signer can sign
SIGNABLE_NAMES = SIGNABLE_TEXT.filter(lambda name: name not in {"sig", "exp", "kid"})
SIGNABLE = st.lists(st.tuples(SIGNABLE_NAMES, SIGNABLE_TEXT), max_size=10)
NOT_CONSENT = st.one_of(st.sampled_from(["sig", "kid", "exp", "program"]), SIGNABLE_TEXT).filter(
    lambda name: name not in {"gdpr", "gdpr_consent"}
)


@given(SIGNABLE)
def test_any_signed_query_survives_the_trip_through_a_url(params: list[tuple[str, str]]) -> None:
    query = as_query(signed(params))
    assert list(query.items())[: len(params)] == params
    assert VERIFIER.check(CLICK_PATH, query, NOW) == pb.IVT_NONE
    # ... and the canonical encoding is the one the docstring gives.
    assert all(quote(name, safe="") in signed(params) for name, _ in params)


@given(SIGNABLE, st.data())
def test_a_random_change_to_a_signed_query_never_verifies(
    params: list[tuple[str, str]], data: st.DataObject
) -> None:
    pairs = list(as_query(signed(params)).items())
    mutation = data.draw(st.sampled_from(["change", "append", "remove"]))
    if mutation == "append":
        pairs.append((data.draw(NOT_CONSENT), data.draw(SIGNABLE_TEXT)))
    else:
        index = data.draw(st.integers(0, len(pairs) - 1))
        assume(pairs[index][0] not in {"gdpr", "gdpr_consent"})
        if mutation == "remove":
            del pairs[index]
        else:
            name = data.draw(st.one_of(st.just(pairs[index][0]), NOT_CONSENT))
            new = (name, data.draw(SIGNABLE_TEXT))
            assume(new != pairs[index])
            pairs[index] = new
    assert VERIFIER.check(CLICK_PATH, MultiDict(pairs), NOW) == pb.IVT_BAD_SIGNATURE
