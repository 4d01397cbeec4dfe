"""Signed click links: an HMAC-SHA256 over the click path and its query parameters.

A click link carries `exp` (epoch seconds), `kid` (which key) and `sig`. Our destination comes
from core data, never from the query (unlike Revive Adserver's CVE-2021-22873 open redirect), so
the signature protects what the advertiser is billed by: no parameter can be added, changed,
removed or repeated, and an old link stops counting once it expires.

Canonical form (what `sig` is computed over):

1. Take every query pair (key, value), duplicates included, in any order, except `sig` and the
   consent macros `gdpr` and `gdpr_consent`: the publisher's consent platform fills those in
   after an ad server signed the link, and they change neither where a click goes nor what is
   billed. `exp` and `kid` are covered.
2. Percent-encode each key and each value: UTF-8, every byte except RFC 3986 unreserved
   characters (`A-Z a-z 0-9 - . _ ~`) as `%XX` with upper-case hex
   (`urllib.parse.quote(x, safe="")`).
3. Sort the encoded pairs by key, then value, comparing the encoded ASCII strings.
4. Join them as `k=v` with `&`.
5. The message is the encoded path (`quote(path, safe="/")`, e.g. `/v1/click`), a newline
   (`\\n`), then that string. `sig` is HMAC-SHA256(secret, message) as unpadded base64url.

The path signed is the tracker's own click path, `/v1/click`, as the tracker sees it: a
reverse proxy that serves the tracker under a prefix (`https://t.example/track/v1/click`)
strips the prefix before the request arrives, so a base URL's path prefix is not signed.

`CLICK_SIGNING_KEYS` is `kid:base64secret[,kid:base64secret...]`: the first key signs, every
key verifies (rotation: put the new key first, keep the old one until its links expire).
Without `CLICK_SIGNING_KEYS`, clicks are not checked: the tracker builds no verifier then.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import NamedTuple
from urllib.parse import quote, quote_from_bytes, urlsplit

from multidict import MultiMapping

from tracker.schema.tracking.v1 import tracking_pb2 as pb

CLICK_PATH = "/v1/click"
# Bounds on a query the verifier will hash: it runs on every click, so hostile input must not
# cost more than a legitimate link. The signer refuses to produce a link beyond them.
MAX_PARAMS = 64
MAX_MESSAGE_BYTES = 8 * 1024
# At most this many bytes of the signed keys and values may need percent-encoding: quote() goes
# through every byte of a text that has one character to encode (~40 ns a byte, several times
# what the rest of a check costs per byte), so this, more than the length, bounds what a
# hostile link costs. Real links carry ids and short texts, a few dozen such bytes.
MAX_QUOTED_BYTES = 512
MIN_SECRET_BYTES = 16
# Twelve digits reach the year 33658; more would only be a way to make int() work hard.
MAX_EXPIRES_AT = 10**12 - 1
SIGNATURE_PARAMS = frozenset({"sig", "exp", "kid"})
UNSIGNED_PARAMS = frozenset({"sig", "gdpr", "gdpr_consent"})

_KID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_EXP = re.compile(r"[0-9]{1,12}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes as base64url without padding
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
_UNRESERVED_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


class SigningKey(NamedTuple):
    kid: str
    secret: bytes

    def __repr__(self) -> str:
        # Keys end up in tracebacks and debug logs; the secret must not.
        return f"SigningKey(kid={self.kid!r}, secret=<{len(self.secret)} bytes>)"


def parse_signing_keys(text: str) -> tuple[SigningKey, ...]:
    """CLICK_SIGNING_KEYS: `kid:base64secret[,kid:base64secret...]`, the first key signs.

    Raises ValueError with one line that names the entry (and its kid when well-formed), never
    the secret."""
    if not text.strip():
        raise ValueError("no keys (expected kid:base64secret[,kid:base64secret...])")
    keys: list[SigningKey] = []
    for number, entry in enumerate(text.split(","), start=1):
        key = _parse_entry(number, entry.strip())
        if any(known.kid == key.kid for known in keys):
            raise ValueError(f"entry {number}: key id {key.kid!r} appears twice")
        keys.append(key)
    return tuple(keys)


def _parse_entry(number: int, entry: str) -> SigningKey:
    if not entry:
        raise ValueError(f"entry {number} is empty")
    kid, colon, encoded = entry.partition(":")
    if not colon:
        raise ValueError(f"entry {number} is not kid:base64secret")
    if not _KID.fullmatch(kid):
        # Not quoted: a malformed kid may be a secret pasted in the wrong place.
        raise ValueError(f"entry {number}: key id is not 1-32 characters of [A-Za-z0-9._-]")
    secret = _decode_secret(encoded)
    if secret is None:
        raise ValueError(f"entry {number} (kid {kid!r}): secret is not base64")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"entry {number} (kid {kid!r}): secret is {len(secret)} bytes,"
            f" at least {MIN_SECRET_BYTES} needed"
        )
    return SigningKey(kid, secret)


def _decode_secret(encoded: str) -> bytes | None:
    """Standard or urlsafe base64, padding optional."""
    standard = encoded.translate(_URLSAFE_TO_STANDARD)
    standard += "=" * (-len(standard) % 4)
    try:
        return base64.b64decode(standard, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        return None


def _encode(text: str) -> str:
    # quote() costs several times a regex match; most keys and values need no escaping at all.
    return text if _UNRESERVED.fullmatch(text) else quote(text, safe="")


class _QuotedEncoder:
    """_encode, refusing (ValueError) once more than `max_quoted` bytes went through quote()."""

    def __init__(self, max_quoted: int) -> None:
        self.max_quoted = max_quoted
        self._left = max_quoted

    def __call__(self, text: str) -> str:
        if _UNRESERVED.fullmatch(text):
            return text
        data = text.encode()  # UnicodeEncodeError on a lone surrogate, as quote() would raise
        self._left -= len(data)
        if self._left < 0:
            raise ValueError(
                f"more than {self.max_quoted} bytes of parameters need percent-encoding"
            )
        return quote_from_bytes(data, safe="")


def canonical_message(
    path: str, pairs: Iterable[tuple[str, str]], *, max_quoted: int | None = None
) -> str:
    """The text `sig` is computed over (see the module docstring); always ASCII.

    Raises ValueError: UnicodeEncodeError on text that is not valid Unicode (lone surrogates),
    or, with `max_quoted`, once more than that many bytes of keys and values would need
    percent-encoding (before encoding them)."""
    signed = [(key, value) for key, value in pairs if key not in UNSIGNED_PARAMS]
    # Most links need no encoding at all: one regex match over all of their text says so.
    encode: Callable[[str], str] | None = None
    if not _UNRESERVED.fullmatch("".join(chain.from_iterable(signed))):
        encode = _encode if max_quoted is None else _QuotedEncoder(max_quoted)
    return _joined(path, signed, encode)


def _joined(path: str, signed: list[tuple[str, str]], encode: Callable[[str], str] | None) -> str:
    """The canonical message of the signed pairs, each key and value through `encode` (None:
    none needs encoding)."""
    if encode is not None:
        signed = [(encode(key), encode(value)) for key, value in signed]
    signed.sort()
    if not _PLAIN_PATH.fullmatch(path):
        path = quote(path, safe="/")
    return path + "\n" + "&".join(f"{key}={value}" for key, value in signed)


def _encode_signature(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_query(
    path: str, params: Sequence[tuple[str, str]], key: SigningKey, expires_at: int
) -> str:
    """The query string (without `?`) of a signed link: `params` in the given order, then
    `exp`, `kid` and `sig`. Raises ValueError for a link the verifier would refuse."""
    reserved = sorted({name for name, _ in params} & SIGNATURE_PARAMS)
    if reserved:
        raise ValueError(f"parameter {reserved[0]!r} is reserved for the signature")
    if not 0 <= expires_at <= MAX_EXPIRES_AT:
        raise ValueError(f"expiry {expires_at} is outside [0, {MAX_EXPIRES_AT}]")
    if not _KID.fullmatch(key.kid):
        raise ValueError("key id is not 1-32 characters of [A-Za-z0-9._-]")
    pairs = [*params, ("exp", str(expires_at)), ("kid", key.kid)]
    if len(pairs) + 1 > MAX_PARAMS:
        raise ValueError(f"more than {MAX_PARAMS} parameters with exp, kid and sig")
    message = canonical_message(path, pairs)
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError(f"signed text is {len(message)} bytes, at most {MAX_MESSAGE_BYTES}")
    canonical_message(path, pairs, max_quoted=MAX_QUOTED_BYTES)  # what the verifier refuses
    digest = hmac.new(key.secret, message.encode("ascii"), hashlib.sha256).digest()
    pairs.append(("sig", _encode_signature(digest)))
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in pairs)


def parse_base_url(text: str) -> str:
    """The tracker's public base URL for printed links, without a trailing slash.

    http(s), a host, ASCII (punycode and percent-encoding are the writer's job), no
    credentials, query or fragment. A path is kept as a prefix; it is not signed."""
    if not text.isascii() or any(char.isspace() or not char.isprintable() for char in text):
        raise ValueError("must be ASCII without spaces or control characters")
    if "?" in text or "#" in text:
        raise ValueError("must not have a query or a fragment")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        raise ValueError("has a bad port") from None
    return text.rstrip("/")


def signed_click_url(
    base_url: str,
    program: str,
    params: Sequence[tuple[str, str]],
    key: SigningKey,
    expires_at: int,
) -> str:
    """`{base_url}/v1/click?program=...&...&exp=...&kid=...&sig=...`, signed over `/v1/click`
    (see the module docstring for why the base URL's path is not signed)."""
    base = parse_base_url(base_url)
    query = sign_query(CLICK_PATH, [("program", program), *params], key, expires_at)
    return f"{base}{CLICK_PATH}?{query}"


class LinkVerifier:
    """Checks the signature of a click against every configured key; cheap and total."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        # One keyed HMAC per key, copied per call: the key schedule is computed once.
        self._macs = {key.kid: hmac.new(key.secret, digestmod=hashlib.sha256) for key in keys}
        if not self._macs:
            raise ValueError("a link verifier needs at least one key")

    def check(self, path: str, query: MultiMapping[str], now: float) -> int:
        """IVT_NONE, IVT_BAD_SIGNATURE or IVT_EXPIRED_LINK (`now >= exp`) for a request's
        path and decoded query (aiohttp's `request.query`). Never raises."""
        if len(query) > MAX_PARAMS:
            return pb.IVT_BAD_SIGNATURE
        fields = _signature_fields(query)
        if fields is None:
            return pb.IVT_BAD_SIGNATURE
        sig, kid, exp = fields
        mac = self._macs.get(kid)
        if mac is None:
            return pb.IVT_BAD_SIGNATURE
        message = _bounded_message(path, query)
        if message is None:
            return pb.IVT_BAD_SIGNATURE
        mac = mac.copy()
        mac.update(message)
        # Both sides are ASCII here (_SIG matched), as compare_digest requires for str.
        if not hmac.compare_digest(_encode_signature(mac.digest()), sig):
            return pb.IVT_BAD_SIGNATURE
        return pb.IVT_EXPIRED_LINK if now >= int(exp) else pb.IVT_NONE


def _signature_fields(query: MultiMapping[str]) -> tuple[str, str, str] | None:
    """(sig, kid, exp) when each appears exactly once and sig and exp are well-formed."""
    sigs = query.getall("sig", ())
    kids = query.getall("kid", ())
    exps = query.getall("exp", ())
    if len(sigs) != 1 or len(kids) != 1 or len(exps) != 1:
        return None
    if not _SIG.fullmatch(sigs[0]) or not _EXP.fullmatch(exps[0]):
        return None
    return sigs[0], kids[0], exps[0]


def _bounded_message(path: str, query: MultiMapping[str]) -> bytes | None:
    """The canonical message, or None when it would exceed MAX_MESSAGE_BYTES or
    MAX_QUOTED_BYTES, or is not valid Unicode. Most of what is refused is refused from one
    pass in C over the query's text, before any encoding."""
    signed = [(key, value) for key, value in query.items() if key not in UNSIGNED_PARAMS]
    try:
        text = "".join(chain.from_iterable(signed)).encode()
    except UnicodeEncodeError:
        return None
    # Every byte outside the unreserved characters becomes %XX, and belongs to a text that
    # goes through quote(): both bounds can be told from their number.
    escaped = len(text.translate(None, _UNRESERVED_BYTES))
    at_least = len(path) + 1 + len(text) + 2 * escaped + 2 * len(signed)
    if escaped > MAX_QUOTED_BYTES or at_least > MAX_MESSAGE_BYTES + 1:
        return None
    # No escaped byte is canonical_message's "nothing to encode", told from the count in hand.
    encode = _QuotedEncoder(MAX_QUOTED_BYTES) if escaped else None
    try:
        message = _joined(path, signed, encode)
    except ValueError:  # too much to percent-encode, after all
        return None
    if len(message) > MAX_MESSAGE_BYTES:
        return None
    return message.encode("ascii")
