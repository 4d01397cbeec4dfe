"""The edge under fire: one real `tracker serve` process, fuzzed two ways.

1. Schemathesis generates requests from docs/openapi.yaml (its examples, coverage and fuzzing
   phases, valid and invalid data) and checks every answer against the document: never a 5xx,
   only documented status codes, content types, headers and JSON bodies.
2. A raw-socket fuzzer of our own sends hand-built HTTP/1.1 (broken request lines, percent and
   UTF-8 junk, paths and headers beyond 8 KiB, odd and duplicate headers, bodies framed every
   way, CL and TE together, pipelines) and reads every answer back: never a 5xx, a valid pixel
   request always gets its GIF, every Location is a program's landing URL or the fallback, the
   process lives and answers /healthz.

Signed click links (made with the tracker's key, valid, expired or tampered with) reach the
paths that only an unflagged click takes (the duplicate check after the answer).

Afterwards: the tracker logged no failure inside its own code (a 500, or a click whose event was
lost after its answer) and no personal data (client address, user agent, referer, uid, consent
string); every request it counted as tracked reached the stream; and every event there is within
the README's bounds.

Runs are reproducible (derandomized); EDGE_FUZZ_EXAMPLES (raw, default 200) and
EDGE_FUZZ_SCHEMA_EXAMPLES (per operation, default 30) make them longer, and EDGE_FUZZ_SEED
makes them random from that seed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, note, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.support.edge_stack import (
    ADMIN_TOKEN,
    SIGNING_KEYS,
    EdgeStack,
    edge_stack,
    is_destination,
)
from tests.support.raw_http import Exchange, RawResponse, exchange
from tracker.handlers import PIXEL_GIF
from tracker.head_bound import MAX_HEAD_BYTES
from tracker.integrity.signing import parse_signing_keys, sign_query
from tracker.programs.model import PROGRAM_ID
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.server import MAX_HEADER_FIELD_BYTES, MAX_HEADERS

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
RAW_EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "200"))
SCHEMA_EXAMPLES = int(os.environ.get("EDGE_FUZZ_SCHEMA_EXAMPLES", "30"))
RANDOM_SEED = os.environ.get("EDGE_FUZZ_SEED")

# Event bounds (README "Events").
MAX_TEXT = 512
MAX_PARAMS = 16
MAX_PARAM_KEY = 32
MAX_PARAM_VALUE = 256
MAX_RECORD = 16 * 1024


def _reproducible(test: Callable[..., None]) -> Callable[..., None]:
    """Derandomized, unless EDGE_FUZZ_SEED asks for a random run from that seed."""
    if RANDOM_SEED is None:
        return test
    return seed(int(RANDOM_SEED))(test)


@pytest.fixture(scope="module")
def edge(kinesalite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    with pytest.MonkeyPatch.context() as patch:
        # The autouse fixture that hides a developer's AWS settings is function-scoped: this
        # module-scoped stack needs the same before its first test.
        for key in [key for key in os.environ if key.startswith("AWS_")]:
            patch.delenv(key)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_REGION", "us-east-1")
        with edge_stack(kinesalite_url, tmp_path_factory.mktemp("edge")) as stack:
            yield stack


# --- 1. schemathesis, from docs/openapi.yaml -------------------------------------------------

SCHEMA_CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": int(RANDOM_SEED) if RANDOM_SEED is not None else 20_240_601,
        "generation": {
            "mode": "all",  # valid and invalid data
            "max-examples": SCHEMA_EXAMPLES,
            "deterministic": RANDOM_SEED is None,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "max-redirects": 0,  # a click's 302 is the answer under test, never followed
        "request-timeout": 10,
        "auth": {"openapi": {"adminToken": {"bearer": ADMIN_TOKEN}}},
    }
)
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH, config=SCHEMA_CONFIG)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.timeout(120 + SCHEMA_EXAMPLES * 2)
@SCHEMA.parametrize()
@settings(
    max_examples=SCHEMA_EXAMPLES,
    deadline=None,
    derandomize=RANDOM_SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_answers_conform_to_the_openapi_document(
    case: schemathesis.Case[Any], edge: EdgeStack
) -> None:
    case.call_and_validate(base_url=edge.base_url, checks=CHECKS)
    assert edge.alive(), edge.output()


# --- 2. raw HTTP/1.1 over sockets ------------------------------------------------------------

PORT_MARK = b"@PORT@"  # replaced by the tracker's port when a request is sent
HOST = b"127.0.0.1:" + PORT_MARK


@dataclass(frozen=True)
class RawRequest:
    method: bytes
    target: bytes
    version: bytes
    header_lines: tuple[bytes, ...]
    body: bytes = b""
    line_end: bytes = b"\r\n"
    # Well-formed HTTP/1.1 whose framing is not in doubt: the server must answer it.
    well_formed: bool = False

    def render(self, port: int) -> bytes:
        line = self.method + b" " + self.target + (b" " + self.version if self.version else b"")
        head = self.line_end.join([line, *self.header_lines])
        data = head + self.line_end + self.line_end + self.body
        return data.replace(PORT_MARK, str(port).encode())

    @property
    def is_head(self) -> bool:
        return self.method == b"HEAD"

    @property
    def wants_pixel(self) -> bool:
        """A well-formed GET or HEAD of the pixel or of a conversion: always 200 and the GIF,
        whatever it holds."""
        path = self.target.split(b"?", 1)[0]
        return (
            self.well_formed
            and self.method in (b"GET", b"HEAD")
            and path in (b"/v1/pixel", b"/v1/conversion")
        )


def _joined(parts: st.SearchStrategy[list[bytes]], separator: bytes) -> st.SearchStrategy[bytes]:
    return parts.map(separator.join)


def _repeated(unit: bytes, counts: list[int]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(counts).map(lambda count: unit * count)


ROUTES = [
    b"/v1/pixel",
    b"/v1/pixel",
    b"/v1/click",
    b"/v1/click",
    b"/v1/conversion",
    b"/v1/conversion",
    b"/event/demo-shoes",
    b"/event/demo-books",
    b"/event/unknown-1",
    b"/healthz",
    b"/readyz",
    b"/metrics",
    b"/admin/cache/purge",
]
ODD_ROUTES = [
    b"/",
    b"/v1/",
    b"/event/",
    b"/event",
    b"/v1/pixel/",
    b"/V1/PIXEL",
    b"/v1/conversion/",
    b"/v1/conversions",
    b"/nope",
    b"//v1/click",
]
# Path segments: percent-encodings valid and not, NUL, dot segments, overlong and invalid UTF-8.
SEGMENTS = [
    b"..",
    b".",
    b"",
    b"%2e%2e",
    b"%2E%2E%2F",
    b"%00",
    b"%2F",
    b"%2f..%2f",
    b"%C0%AE%C0%AE",
    b"%C0%AF",
    b"%E0%80%AF",
    b"%F0%80%80%AF",
    b"%FF",
    b"%FE%FF",
    b"%E2%82",
    b"%ED%A0%80",
    b"%",
    b"%G1",
    b"%1",
    b"%u002e",
    b"%5C",
    b"\\",
    b";a=b",
    b"%3B",
    b"%20",
    b"+",
    b"~",
    b"demo-shoes",
    b"demo-shoes%00",
    b"%C3%A9",
    "é".encode(),
    b"\xff",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\x7f",
]
QUERY_KEYS = [
    b"program",
    b"program",
    b"program",
    b"customer",
    b"gdpr",
    b"gdpr_consent",
    b"uid",
    b"exp",
    b"kid",
    b"sig",
    b"click_id",
    b"click_id",
    b"order_id",
    b"value",
    b"value",
    b"currency",
    b"adt_click",
    b"utm_source",
    b"utm_campaign",
    b"a.b-c_d",
    b"url",
    b"redirect",
    b"landing_url",
    b"next",
    b"Location",
    b"a" * 32,
    b"a" * 33,
    b"k%00",
    b"%FF",
    b"pro%67ram",
    b"program%00",
    b"",
]
RAW_KEYS = ["ключ".encode(), b"k\xff", b"a b"]
SAFE_VALUES = [
    b"",
    b"demo-shoes",
    b"demo-shoes",
    b"demo-books",
    b"demo-paused",
    b"demo-expired",
    b"unknown-1",
    b"a" * 64,
    b"a" * 65,
    b"demo-shoes%00",
    b"demo%20shoes",
    b"..",
    b"%2e%2e%2f",
    b"1001",
    b"1002",
    b"-1",
    b"99999999999999999999",
    b"0",
    b"1",
    b"2",
    b"k1",
    b"1900000000",
    b"99999999999999",
    b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    b"CPzHq4APzHq4AAHABBENDXCsAP_AAH_AAAqIHWtf_X_fb3_j-_59_9t0eY1f9_7_v-0zjgeds-8Nyd_X_L8X5mM7vB36pq4KuR4Eu3LBAQdlHOHcTQmw6IkVqTPsbk2Mr7NKJ7PEmlMbe2dYGH9_n9XT_ZKY79_____7__-_____7_f__-__3_vp9V---wOJAJMNS-AizEscCSaNKoUQIQriQ6AEAFFCMLRNYQErgp2VwEfoIGACA1ARgRAgxBRiyCAAAAAJKIgBADwQCIAiAQAAgBUgIQAEaAILACQMAgAFANCwAigCECQgyOCo5TAgIkWignkrAEou9jDCEMosAKBR_RAAA.YAAAAAAAAAAA",
    b"a.b",
    b"a..b",
    b"====",
    b"alice",
    b"x" * 256,
    b"x" * 257,
    b"http://evil.example/",
    b"https%3A%2F%2Fevil.example%2F",
    b"//evil.example",
    b"javascript:alert(1)",
    b"%0d%0aLocation:%20https://evil.example/",
    b"%0D%0ASet-Cookie:%20a=b",
    b"%E2%80%A8",
    b"%C0%80",
    b"%FF%FE",
    b"%zz",
    b"%",
    b"a%",
    b"%C3%A9t%C3%A9",
    # Conversion parameters, well formed and not.
    b"0123456789abcdef0123456789abcdef",
    b"0123456789ABCDEF0123456789ABCDEF",
    b"0123456789abcdef0123456789abcde",
    b"SO-2024.01:7_x",
    b"o" * 65,
    b"12.5",
    b"0.000001",
    b"999999999999.999999",
    b"1000000000000",
    b"1e3",
    b"1.0000001",
    b"nan",
    b"%20" + b"1",
    b"%2B1",
    b"%D9%A1%D9%A2",
    b"EUR",
    b"eur",
    b"EURO",
]
# Only in the last request of a connection: bytes that may break the request line itself.
RAW_VALUES = [
    "été".encode(),
    b"\xff\xfe",
    b"\xc0\xaf",
    b"a b",
    b"a\tb",
    b"a\x00b",
    b"a\rb",
    b"a\nb",
    b"\r\nLocation: https://evil.example/",
    b"#fragment",
    b"a" * 9000,
    b"%41" * 3000,
]
USER_AGENTS = [
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    b"Googlebot/2.1 (+http://www.google.com/bot.html)",
    b"curl/8.5.0",
    b"",
    "Mozilla/5.0 ünïcode".encode(),
    b"\xff\xfe\xfd",
    b"a" * 511,
    b"a" * 513,
    b"a" * 2000,
]
REFERERS = [
    b"https://publisher.example/article?id=7&email=me@example.com#comments",
    b"http://[::1]:8080/path",
    b"android-app://com.example",
    b"javascript:alert(1)",
    b"not a url",
    b"https://" + b"h" * 300 + b".example/" + b"p" * 600,
    b"https://publisher.example/\xff\xfe",
]
FORWARDED = [
    b"203.0.113.9",
    b"203.0.113.9, 198.51.100.7",
    b"2001:db8::1",
    b"fe80::1%eth0",
    b"999.1.1.1",
    b"garbage",
    b",",
    b"",
    b"1.2.3.4, " * 40,
    b"a" * 200,
    b"203.0.113.9, \xe9",
]
PRIVACY_HEADERS = [
    b"Sec-GPC: 1",
    b"Sec-GPC: 0",
    b"DNT: 1",
    b"DNT: yes",
    b"Sec-Purpose: prefetch",
    b"Sec-Purpose: prefetch;prerender",
    b"Purpose: prefetch",
    b"X-Moz: prefetch",
    b"X-Moz: PREFETCH ",
    b"Authorization: Bearer " + ADMIN_TOKEN.encode(),
    b"Authorization: Bearer wrong",
    b"Authorization: Basic YTpi",
    b"Authorization: Bearer",
    b"Accept: image/gif",
    b"Accept-Encoding: gzip, br",
    b"Cookie: uid=abc; other=1",
    b"Connection: keep-alive",
    b"X-Forwarded-Proto: https",
    b"Forwarded: for=203.0.113.9;proto=https",
]
# Only in the last request: headers that break the rules or the framing.
ODD_HEADERS = [
    b"Host: evil.example",
    b"Host:",
    b"Host: a b",
    b"X Foo: bar",
    b"X\tFoo: bar",
    b"(X): bar",
    b"X\x00Y: bar",
    "Ü-Header: v".encode(),
    b": no name",
    b"NoColonHere",
    b" folded continuation",
    b"\tfolded continuation",
    b"X-Ctl: a\x00b",
    b"X-Ctl: a\x7fb",
    b"X-Ctl: a\x1bb",
    b"X-Latin: \xe9\xff",
    b"Connection: close",
    b"Connection: upgrade",
    b"Upgrade: websocket",
    b"Upgrade: h2c",
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
    b"Expect: 100-continue",
    b"Expect: something-else",
    b"Content-Type: application/json",
    b"X-HTTP-Method-Override: DELETE",
]
METHODS = [b"GET"] * 8 + [b"HEAD", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]
ODD_METHODS = [
    b"TRACE",
    b"CONNECT",
    b"PURGE",
    b"get",
    b"Get",
    b"head",
    b"FOO",
    b"G ET",
    b"GET\x00",
    b"",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"PRI",
    b"M" * 300,
]
VERSIONS = [b"HTTP/1.1"] * 6 + [b"HTTP/1.0"]
ODD_VERSIONS = [
    b"HTTP/2.0",
    b"HTTP/1.2",
    b"HTTP/0.9",
    b"HTTP/9.9",
    b"http/1.1",
    b"HTTP/1.1 junk",
    b"HTTP/1.01",
    b"HTTP/1",
    b"HTTP/1.1\x00",
    b"",
]
LONG = [100, 1000, 4000, 8000, 8180, 8190, 8192, 8200, 9000, 16384, 70000]


def _query(values: list[bytes], max_pairs: int, *, raw: bool) -> st.SearchStrategy[bytes]:
    """Pairs of keys and values; `raw`: keys with bytes no request target may hold, too."""
    keys = QUERY_KEYS + RAW_KEYS if raw else QUERY_KEYS
    pair = st.one_of(
        st.builds(
            lambda key, value: key + b"=" + value,
            st.sampled_from(keys),
            st.sampled_from(values),
        ),
        st.sampled_from(keys),  # a key alone
        st.sampled_from([b"=", b"==", b"&", b"program=demo-shoes=x", b"%26program%3Ddemo-shoes"]),
    )
    separator = st.sampled_from([b"&", b"&", b"&", b";", b"&&"])
    return st.builds(
        lambda pairs, sep: sep.join(pairs), st.lists(pair, max_size=max_pairs), separator
    )


def _extra_params(count: int) -> bytes:
    return b"&".join(b"p%d=%d" % (index, index) for index in range(count))


PROGRAM_VALUES = [
    b"demo-shoes",
    b"demo-shoes",
    b"demo-shop",
    b"demo-shop",
    b"demo-books",
    b"demo-paused",
    b"demo-expired",
    b"unknown-1",
    b"",
    b"a" * 65,
    b"demo-shoes%00",
    b"..",
    b"%64emo-shoes",
]


def _origin_form(values: list[bytes], max_pairs: int, *, odd: bool) -> st.SearchStrategy[bytes]:
    routes = ROUTES + ODD_ROUTES if odd else ROUTES
    segments = SEGMENTS if odd else [s for s in SEGMENTS if all(0x20 < byte < 0x7F for byte in s)]
    path = st.one_of(
        st.sampled_from(routes),
        st.sampled_from(routes),
        st.sampled_from(routes),
        st.builds(
            lambda base, parts: base.rstrip(b"/") + b"/" + b"/".join(parts),
            st.sampled_from(routes),
            st.lists(st.sampled_from(segments), min_size=1, max_size=4),
        ),
        st.builds(
            lambda parts: b"/event/" + b"".join(parts),
            st.lists(st.sampled_from(segments), min_size=1, max_size=3),
        ),
    )
    # Most tracking requests name a program first; the rest of the query is anything.
    program = st.one_of(
        st.sampled_from(PROGRAM_VALUES).map(lambda value: b"program=" + value + b"&"),
        st.sampled_from(PROGRAM_VALUES).map(lambda value: b"program=" + value + b"&"),
        st.sampled_from(PROGRAM_VALUES).map(lambda value: b"program=" + value + b"&"),
        st.just(b""),
    )
    query = st.one_of(
        st.builds(bytes.__add__, program, _query(values, max_pairs, raw=odd)),
        st.builds(bytes.__add__, program, _query(values, max_pairs, raw=odd)),
        st.sampled_from([16, 17, 40]).map(_extra_params).map(lambda q: b"program=demo-shoes&" + q),
    )
    return st.builds(
        lambda p, q, with_query: p + b"?" + q if with_query else p,
        path,
        query,
        st.sampled_from([True, True, True, False]),
    )


def _target() -> st.SearchStrategy[bytes]:
    """Any request target, broken or huge ones included."""
    values = SAFE_VALUES + RAW_VALUES
    origin = _origin_form(values, 24, odd=True)
    long_path = st.builds(
        lambda base, unit, count: base + b"/" + unit * count,
        st.sampled_from(ROUTES),
        st.sampled_from([b"a", b"%41", b"/..", b"%FF"]),
        st.sampled_from([count // 3 for count in LONG]),
    )
    long_query = st.builds(
        lambda base, key, filler: base + b"?program=demo-shoes&" + key + b"=" + filler,
        st.sampled_from([b"/v1/pixel", b"/v1/click", b"/event/demo-shoes", b"/v1/conversion"]),
        st.sampled_from([b"utm_source", b"uid", b"gdpr_consent", b"sig", b"value", b"order_id"]),
        st.sampled_from(LONG).map(lambda count: b"v" * count),
    )
    absolute = st.builds(
        lambda authority, rest: authority + rest,
        st.sampled_from(
            [
                b"http://evil.example",
                b"http://" + HOST,
                b"HTTP://EVIL.EXAMPLE:80",
                b"https://user:pass@evil.example",
                b"http://evil.example:99999",
                b"//evil.example",
                b"ftp://evil.example",
            ]
        ),
        _origin_form(SAFE_VALUES, 6, odd=False),
    )
    other = st.sampled_from([b"*", b"evil.example:443", b"", b"v1/pixel", b"?program=demo-shoes"])
    return st.one_of(origin, origin, long_path, long_query, absolute, other)


def _common_headers(odd: bool) -> st.SearchStrategy[list[bytes]]:
    agents = USER_AGENTS if odd else [ua for ua in USER_AGENTS if len(ua) < 4000]
    one = st.one_of(
        st.sampled_from(agents).map(lambda ua: b"User-Agent: " + ua),
        st.sampled_from(REFERERS).map(lambda referer: b"Referer: " + referer),
        st.sampled_from(FORWARDED).map(lambda value: b"X-Forwarded-For: " + value),
        st.sampled_from(PRIVACY_HEADERS),
    )
    return st.lists(one, max_size=8)


def _unique(header_lines: list[bytes]) -> list[bytes]:
    """The first line of each header name: a sender must not repeat a header that is not a
    list (RFC 9110, 5.3), and aiohttp refuses some repeated ones (User-Agent, Host, ...)."""
    seen: set[bytes] = set()
    kept = []
    for line in header_lines:
        name = line.split(b":", 1)[0].lower()
        if name not in seen:
            seen.add(name)
            kept.append(line)
    return kept


SIGNING_KEY = parse_signing_keys(SIGNING_KEYS)[0]
SIGNED_PARAMS = [
    ("utm_source", "newsletter"),
    ("utm_campaign", "été"),
    ("gdpr", "1"),
    ("gdpr", "0"),
    ("gdpr_consent", "CPzHq4APzHq4AAHABBENDXCs"),
    ("uid", "alice"),
    ("customer", "1001"),
    ("customer", "7"),
    ("a" * 33, "x"),
    ("k", "v" * 300),
]


def _signed(program: str, params: list[tuple[str, str]], expires_at: int) -> bytes:
    query = sign_query("/v1/click", [("program", program), *params], SIGNING_KEY, expires_at)
    return b"/v1/click?" + query.encode()


@st.composite
def _signed_click(draw: st.DrawFn) -> bytes:
    """A click link signed with the tracker's key: valid, expired, or tampered with after."""
    program = draw(st.sampled_from(["demo-shoes", "demo-shoes", "demo-books", "demo-paused", "x"]))
    params = draw(st.lists(st.sampled_from(SIGNED_PARAMS), max_size=4))
    expires_at = draw(st.sampled_from([4_000_000_000, 4_000_000_000, 1_000, 0]))
    target = _signed(program, params, expires_at)
    tamper = draw(
        st.sampled_from(
            [b"", b"", b"", b"&utm_x=1", b"&sig=AAAA", b"&program=demo-books", b"&gdpr=1"]
        )
    )
    return target + tamper


TRACKING_ROUTES = [
    b"/v1/click",
    b"/v1/pixel",
    b"/v1/conversion",
    b"/event/demo-shoes",
    b"/v1/click",
    b"/v1/pixel",
    b"/event/demo-paused",
    b"/v1/click",
    b"/event/unknown-1",
]


@st.composite
def _well_formed(draw: st.DrawFn) -> RawRequest:
    """A request the server must answer, and after which the connection stays usable."""
    kind = draw(
        st.sampled_from(
            ["tracking", "tracking", "signed-click", "signed-click", "any-path", "purge"]
        )
    )
    method = draw(st.sampled_from([b"GET", b"GET", b"GET", b"HEAD"]))
    if kind == "purge":
        method, target = b"POST", b"/admin/cache/purge"
    elif kind == "signed-click":
        target = draw(_signed_click())
    elif kind == "any-path":
        target = draw(_origin_form(SAFE_VALUES, 16, odd=False))
    else:
        route = draw(st.sampled_from(TRACKING_ROUTES))
        program = draw(st.sampled_from(PROGRAM_VALUES))
        query = draw(_query(SAFE_VALUES, 16, raw=False))
        target = route + b"?program=" + program + (b"&" + query if query else b"")
    headers = _unique([b"Host: " + HOST, *draw(_common_headers(odd=False))])
    body = b""
    framing = draw(st.sampled_from(["none", "none", "length", "chunked"]))
    if framing == "length":
        body = draw(st.binary(max_size=64))
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
        headers.append(b"Transfer-Encoding: chunked")
    return RawRequest(method, target, b"HTTP/1.1", tuple(headers), body, well_formed=True)


SMUGGLED = (
    b"GET /v1/click?program=demo-paused&url=https://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n"
)
BODY_FRAMINGS: list[tuple[tuple[bytes, ...], bytes]] = [
    ((), b""),
    ((b"Content-Length: 5",), b"hello"),
    ((b"Content-Length: 0",), b""),
    ((b"Content-Length: 3",), b"hello"),  # two bytes left over: the start of a next request
    ((b"Content-Length: 5",), b"hel" + SMUGGLED),
    ((b"Content-Length: 0",), SMUGGLED),
    ((b"Content-Length: 100",), b"short"),
    ((b"Content-Length: 5000",), b"x" * 5000),
    ((b"Content-Length: -1",), b""),
    ((b"Content-Length: +5",), b"hello"),
    ((b"Content-Length: abc",), b""),
    ((b"Content-Length: 1, 1",), b"a"),
    ((b"Content-Length: 99999999999999999999999",), b""),
    ((b"Content-Length: 5", b"Content-Length: 6"), b"hello!"),
    ((b"Transfer-Encoding: chunked",), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked",), b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
    ((b"Transfer-Encoding: chunked",), b"zz\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked",), b"5\r\nhelloXX0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked",), b"5\r\nhello\r\n"),
    ((b"Transfer-Encoding: chunked",), b"ffffffffffffffffff\r\nx\r\n"),
    ((b"Transfer-Encoding: chunked",), b"-5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked",), b"5\nhello\n0\n\n"),
    ((b"Transfer-Encoding: chunked",), b"5 ;ext\r\nhello\r\n0\r\nTrailer: x\r\n\r\n"),
    ((b"Transfer-Encoding: CHUNKED",), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding:  chunked ",), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: gzip, chunked",), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked, gzip",), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: gzip",), b"hello"),
    ((b"Transfer-Encoding: identity",), b"hello"),
    ((b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), b"0\r\n\r\n"),
    ((b"Transfer-Encoding: chunked", b"Content-Length: 5"), b"0\r\n\r\n" + SMUGGLED),
    ((b"Content-Length: 5", b"Transfer-Encoding: chunked"), b"5\r\nhello\r\n0\r\n\r\n"),
    ((b"Transfer-Encoding: xchunked", b"Content-Length: 5"), b"hello"),
    ((b"Expect: 100-continue", b"Content-Length: 5"), b"hello"),
]


@st.composite
def _any_request(draw: st.DrawFn) -> RawRequest:
    """Anything: the last request on a connection."""
    method = draw(st.one_of(st.sampled_from(METHODS), st.sampled_from(ODD_METHODS)))
    target = draw(_target())
    version = draw(st.one_of(st.sampled_from(VERSIONS), st.sampled_from(ODD_VERSIONS)))
    host = draw(st.sampled_from([[b"Host: " + HOST]] * 4 + [[], [b"Host: " + HOST] * 2]))
    headers = [*host, *draw(_common_headers(odd=True))]
    headers += draw(st.lists(st.sampled_from(ODD_HEADERS), max_size=3))
    extra = draw(st.sampled_from(["none", "none", "none", "many", "big", "big-ua", "duplicates"]))
    if extra == "many":
        count = draw(st.sampled_from([50, 99, 100, 101, 128, 200, 1000]))
        headers += [b"X-Pad-%d: v" % index for index in range(count)]
    elif extra == "big":
        headers.append(b"X-Big: " + draw(_repeated(b"a", LONG)))
    elif extra == "big-ua":
        headers.append(b"User-Agent: " + draw(_repeated(b"u", LONG)))
    elif extra == "duplicates":
        headers += [b"User-Agent: first", b"User-Agent: second", b"Referer: a", b"Referer: b"]
    framing, body = draw(st.sampled_from(BODY_FRAMINGS))
    headers += framing
    order = draw(st.permutations(range(len(headers)))) if len(headers) <= 16 else None
    if order is not None:
        headers = [headers[index] for index in order]
    line_end = draw(st.sampled_from([b"\r\n"] * 15 + [b"\n"]))
    return RawRequest(method, target, version, tuple(headers), body, line_end)


@dataclass(frozen=True)
class Connection:
    requests: tuple[RawRequest, ...]

    def render(self, port: int) -> bytes:
        return b"".join(request.render(port) for request in self.requests)


connections = st.builds(
    lambda leading, last: Connection((*leading, *last)),
    st.lists(_well_formed(), max_size=3),
    st.one_of(st.just([]), st.lists(_any_request(), min_size=1, max_size=1)),
).filter(lambda connection: len(connection.requests) > 0)


def _show(data: bytes, limit: int = 1500) -> str:
    text = repr(data)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data)} bytes)"


def _judge(connection: Connection, sent: bytes, result: Exchange, edge: EdgeStack) -> None:
    def fail(why: str, response: RawResponse | None = None) -> str:
        answer = response.describe() if response is not None else ""
        return f"{why}\nrequest bytes: {_show(sent)}\nanswer:\n{answer}"

    for response in [*result.interim, *result.responses]:
        assert response.status < 500, fail("a 5xx answer", response)
        for location in response.header_values("Location"):
            assert is_destination(location.decode("latin-1")), fail("foreign Location", response)
    leading = [request for request in connection.requests if request.well_formed]
    answered = result.responses
    if len(leading) == len(connection.requests) or len(answered) < len(leading):
        # aiohttp parses what one read brought in as a whole: a broken request refuses the
        # valid ones before it in the same read too, with one 400, and closes. So does a head
        # past MAX_HEAD_BYTES, with one 431.
        refused = (
            len(leading) < len(connection.requests)
            and result.closed
            and answered[-1:]
            and answered[-1].status in (400, 431)
        )
        assert len(answered) >= len(leading) or refused, fail(
            f"{len(answered)} answers to {len(leading)} well-formed requests "
            f"(closed={result.closed}, silent={result.silent})"
        )
    if len(answered) >= len(connection.requests) or len(leading) == len(connection.requests):
        # Each request has its own answer, in order.
        for request, response in zip(connection.requests, answered, strict=False):
            if request.wants_pixel:
                body = b"" if request.is_head else PIXEL_GIF
                content_type = response.header_values("Content-Type")
                assert (response.status, content_type, response.body) == (
                    200,
                    [b"image/gif"],
                    body,
                ), fail("a pixel request without its GIF", response)
    assert edge.alive(), fail(f"the tracker died:\n{edge.output()[-3000:]}")


# Found by this fuzzer (kept as explicit examples): header bytes that are not UTF-8.
LATIN_1_USER_AGENT = Connection(
    (
        RawRequest(
            b"GET",
            b"/v1/pixel?program=demo-shoes",
            b"HTTP/1.1",
            (b"Host: " + HOST, b"User-Agent: Mozilla/5.0 (Windows; U; fr-FR) Caf\xe9/1.0"),
            well_formed=True,
        ),
    )
)
# Answered (302) but its event lost: the duplicate-click check fails after the answer.
LATIN_1_CLICK_WITHOUT_CONSENT = Connection(
    (
        RawRequest(
            b"GET",
            _signed("demo-shoes", [("gdpr", "1")], 4_000_000_000),
            b"HTTP/1.1",
            (b"Host: " + HOST, b"User-Agent: Caf\xe9/1.0"),
            well_formed=True,
        ),
    )
)
LATIN_1_FORWARDED_FOR = Connection(
    (
        RawRequest(
            b"GET",
            b"/v1/click?program=demo-shoes",
            b"HTTP/1.1",
            (b"Host: " + HOST, b"X-Forwarded-For: 203.0.113.9, \xe9"),
            well_formed=True,
        ),
    )
)


@pytest.mark.timeout(120 + RAW_EXAMPLES)
@_reproducible
@settings(
    max_examples=RAW_EXAMPLES,
    deadline=None,
    derandomize=RANDOM_SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(connection=connections)
@example(connection=LATIN_1_USER_AGENT)
@example(connection=LATIN_1_FORWARDED_FOR)
@example(connection=LATIN_1_CLICK_WITHOUT_CONSENT)
def test_raw_http_never_breaks_the_edge(edge: EdgeStack, connection: Connection) -> None:
    sent = connection.render(edge.port)
    note(f"request bytes: {_show(sent)}")
    heads = [request.is_head for request in connection.requests]
    # A body may hold a request of its own: wait a little for a further answer.
    extra_wait = 0.2 if connection.requests[-1].body else 0.0
    result = exchange(edge.port, sent, heads, extra_wait=extra_wait)
    _judge(connection, sent, result, edge)


def test_click_ids_reach_the_landing_page_and_the_stream(edge: EdgeStack) -> None:
    """Pipelined clicks on a program with click_id_param (the templated answer of the real
    process), a HEAD and an HTTP/1.0 one: each Location holds its click's message_id."""
    lines = (b"Host: " + HOST, b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Edge-Click-Id")
    target = b"/v1/click?program=demo-shop&utm_source=edge-click-id"
    requests = [
        RawRequest(b"GET", target, b"HTTP/1.1", lines),
        RawRequest(b"GET", target, b"HTTP/1.1", lines),
        RawRequest(b"HEAD", target, b"HTTP/1.1", lines),
        RawRequest(b"GET", target, b"HTTP/1.0", lines),
    ]
    payload = b"".join(request.render(edge.port) for request in requests)
    result = exchange(edge.port, payload, [request.is_head for request in requests])
    assert [response.status for response in result.responses] == [302] * len(requests)
    ids = []
    for response in result.responses:
        [location] = response.header_values("Location")
        match = CLICK_ID_IN_LOCATION.search(location.decode())
        assert match is not None, location
        assert is_destination(location.decode()), location
        ids.append(match.group(1))
    assert len(set(ids)) == len(requests)
    events = {}
    for data in edge.shipped_records():
        event = pb.TrackingEvent.FromString(data)
        events[event.message_id] = event
    assert all(events[click_id].attribution_window_days == 14 for click_id in ids)
    assert all(events[click_id].programid == "demo-shop" for click_id in ids)


CLICK_ID_IN_LOCATION = re.compile(r"[?&]adt_click=([0-9a-f]{32})")


def test_after_the_fuzzing_the_tracker_is_alive_and_healthy(edge: EdgeStack) -> None:
    assert edge.alive(), edge.output()
    status, body = edge.get("/healthz")
    assert status == 200, body
    status, body = edge.get("/v1/pixel?program=demo-shoes")
    assert (status, body) == (200, PIXEL_GIF)


def _logged(edge: EdgeStack, wanted: Callable[[str], bool]) -> str:
    lines = [line for line in edge.output().splitlines() if wanted(line)]
    shown = "\n".join(line[:2000] for line in lines[:3])
    return f"{len(lines)} such log lines, the first ones:\n{shown}" if lines else ""


def test_no_request_failed_inside_the_tracker(edge: EdgeStack) -> None:
    """A request that raised in a handler (a 500), or in the work a click does after its answer
    (the duplicate check, then its event), is logged with a traceback: its event is lost."""

    def failed(line: str) -> bool:
        return "/tracker/" in line or "Task exception was never retrieved" in line

    failures = _logged(edge, failed)
    assert not failures, failures


# What the fuzzers send that a log line must never hold (README "Privacy": no client address,
# user agent, referer, uid or consent string).
PERSONAL_DATA = [
    "Mozilla/5.0",
    "Googlebot",
    "curl/8.5.0",
    "publisher.example",
    "uid=alice",
    "CPzHq4",
    "203.0.113.9",
    "198.51.100.7",
    "2001:db8::1",
]
CLIENT_ADDRESS = re.compile(r"\b127\.0\.0\.1\b(?!:[0-9])")  # the peer; with a port: a service


def test_no_log_line_holds_personal_data(edge: EdgeStack) -> None:
    def personal(line: str) -> bool:
        return CLIENT_ADDRESS.search(line) is not None or any(
            marker in line for marker in PERSONAL_DATA
        )

    leaks = _logged(edge, personal)
    assert not leaks, leaks


# --- 3. what reached the stream --------------------------------------------------------------

PARAM_KEY = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_PARAM_KEY}}}")
BIG_REQUESTS = [
    b"/v1/pixel?program=demo-shoes&" + _extra_params(40) + b"&long=" + b"v" * 3000,
    b"/v1/click?program=demo-shoes&" + b"k" * 40 + b"=1&uid=" + b"u" * 1000,
    b"/event/demo-shoes?gdpr=1&gdpr_consent=" + b"C" * 5000 + b"&utm_source=" + b"s" * 300,
    b"/v1/conversion?program=demo-shop&click_id="
    + b"c" * 2000
    + b"&order_id="
    + b"o" * 2000
    + b"&value="
    + b"9" * 2000
    + b"&currency=EUR&"
    + _extra_params(20),
]


def _event_problems(data: bytes) -> list[str]:
    problems = []
    if len(data) >= MAX_RECORD:
        problems.append(f"record of {len(data)} bytes")
    event = pb.TrackingEvent()
    event.ParseFromString(data)
    fields: dict[str, Any] = {
        "user_agent": len(event.user_agent) <= MAX_TEXT,
        "referer": len(event.referer) <= MAX_TEXT,
        "params": len(event.params) <= MAX_PARAMS,
        "param keys": all(PARAM_KEY.fullmatch(key) for key in event.params),
        "param values": all(len(value) <= MAX_PARAM_VALUE for value in event.params.values()),
        "programid": PROGRAM_ID.fullmatch(event.programid) is not None,
        "message_id": re.fullmatch(r"[0-9a-f]{32}", event.message_id) is not None,
        "client_ip_anonymized": len(event.client_ip_anonymized) <= 39,
        "user_key": len(event.user_key) <= 64,
        "visitor_id": len(event.visitor_id) <= 64,
        "click_id": event.click_id == "" or re.fullmatch(r"[0-9a-f]{32}", event.click_id),
        "order_id": re.fullmatch(r"[A-Za-z0-9._:-]{0,64}", event.order_id) is not None,
        "value_micros": 0 <= event.value_micros < 10**18,
        "currency": re.fullmatch(r"([A-Z]{3})?", event.currency) is not None,
        "attribution_window_days": 0 <= event.attribution_window_days <= 90,
        "conversion fields": event.event_type == pb.CONVERSION
        or not (event.click_id or event.order_id or event.value_micros or event.currency),
        "conversion params": event.event_type != pb.CONVERSION
        or not {"click_id", "order_id", "value", "currency"} & set(event.params),
    }
    problems += [f"{name} out of bounds" for name, ok in fields.items() if not ok]
    if problems:
        shown = str(event)[:1500]
        problems = [f"{'; '.join(problems)} in {shown}"]
    return problems


@pytest.mark.timeout(90)
def test_every_shipped_event_is_bounded(edge: EdgeStack) -> None:
    for target in BIG_REQUESTS:
        big = b"a" * (MAX_HEADER_FIELD_BYTES - 64)  # as long as a header may be
        request = RawRequest(
            b"GET",
            target,
            b"HTTP/1.1",
            (b"Host: " + HOST, b"User-Agent: " + big, b"Referer: https://r.example/" + big),
        )
        result = exchange(edge.port, request.render(edge.port), [False])
        assert [response.status for response in result.responses][:1] in ([200], [302])
    records = edge.shipped_records()
    assert len(records) >= len(BIG_REQUESTS)
    problems = [problem for data in records for problem in _event_problems(data)]
    assert problems == [], f"{len(problems)} of {len(records)} events:\n" + "\n".join(problems[:5])


def _pixel_head(header_lines: list[bytes]) -> bytes:
    lines = [b"Host: " + HOST, b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)", *header_lines]
    return RawRequest(b"GET", b"/v1/pixel?program=demo-shoes", b"HTTP/1.1", tuple(lines)).render(0)


def _statuses(edge: EdgeStack, payload: bytes) -> list[int]:
    fixed = payload.replace(b"127.0.0.1:0", b"127.0.0.1:" + str(edge.port).encode())
    return [response.status for response in exchange(edge.port, fixed, [False]).responses]


def test_a_head_at_its_bounds_gets_its_pixel(edge: EdgeStack) -> None:
    """MAX_HEADERS headers, Host included, one of them a browser's longest Referer (4 KiB)."""
    referer = b"Referer: https://news.example/" + b"r" * (4096 - 23)
    pads = [b"X-Pad-%d: v" % n for n in range(MAX_HEADERS - 3)]
    assert _statuses(edge, _pixel_head([referer, *pads])) == [200]


@pytest.mark.parametrize(
    "header_lines",
    [
        [b"X-Pad-%d: v" % n for n in range(MAX_HEADERS - 1)],  # one header too many
        [b"X-Pad: " + b"v" * (MAX_HEADER_FIELD_BYTES + 16)],  # longer than a header may be
    ],
    ids=["too many headers", "a header too long"],
)
def test_a_head_past_its_bounds_is_refused_before_the_tracker(
    edge: EdgeStack, header_lines: list[bytes]
) -> None:
    """Parsing a head costs by its size (~1 us a KiB): past the bounds aiohttp answers 400
    without calling the tracker, and the tracker serves on."""
    assert _statuses(edge, _pixel_head(header_lines)) == [400]
    assert edge.alive(), edge.output()
    assert _statuses(edge, _pixel_head([])) == [200]


def test_a_head_past_its_total_size_is_refused_before_the_tracker(edge: EdgeStack) -> None:
    """Headers each within their bounds, together past MAX_HEAD_BYTES: 431 and the connection
    closed before aiohttp parses the head, and the tracker serves on."""
    long_lines = [b"X-Long-%d: " % n + b"v" * 4096 for n in range(MAX_HEAD_BYTES // 4096 + 1)]
    payload = _pixel_head(long_lines)
    assert MAX_HEAD_BYTES < len(payload) < MAX_HEADERS * MAX_HEADER_FIELD_BYTES
    fixed = payload.replace(b"127.0.0.1:0", b"127.0.0.1:" + str(edge.port).encode())
    result = exchange(edge.port, fixed, [False], extra_wait=1.0)
    assert [response.status for response in result.responses] == [431]
    assert result.closed
    assert edge.alive(), edge.output()
    assert _statuses(edge, _pixel_head([])) == [200]


def test_the_longest_request_line_with_three_long_headers_gets_its_pixel(edge: EdgeStack) -> None:
    """Within the total bound: an 8 KiB request line, a 4 KiB referer and two 4 KiB headers."""
    target = b"/v1/pixel?program=demo-shoes&gdpr_consent=" + b"C" * 8000
    lines = (
        b"Host: " + HOST,
        b"Referer: https://news.example/" + b"r" * 4000,
        *(b"X-Long-%d: " % n + b"v" * 4000 for n in range(2)),
    )
    payload = RawRequest(b"GET", target, b"HTTP/1.1", lines).render(edge.port)
    assert len(payload) < MAX_HEAD_BYTES
    assert _statuses(edge, payload) == [200]


TRACKED = re.compile(
    r'^tracker_requests_total\{outcome="([a-z_]+)",route="([a-z]+)"\} ([0-9.e+]+)$'
)


@pytest.mark.timeout(90)
def test_every_tracked_request_reached_the_stream(edge: EdgeStack) -> None:
    """No answered request loses its event: one record per request the tracker counted as
    tracked (every outcome but malformed), nothing dropped."""
    records = edge.shipped_records()
    status, body = edge.get("/metrics")
    assert status == 200
    tracked = 0.0
    for line in body.decode().splitlines():
        match = TRACKED.match(line)
        if match and match.group(1) != "malformed":
            tracked += float(match.group(3))
    assert tracked > 0
    assert edge.metric("tracker_ship_failed_entries_total") == 0
    assert len(records) == tracked, f"{tracked:.0f} requests tracked, {len(records)} events"
