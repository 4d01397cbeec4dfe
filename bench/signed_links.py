"""Click links as an ad server signs them (tracker links sign): the bench's signing key, its
links' parameters, and the links themselves, signed, tampered with or unsigned."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence

from bench.demo_programs import DEMO_PROGRAM_ID
from tracker.integrity.signing import parse_signing_keys, signed_click_url

# Not a secret: the bench's own click signing key, also given to its tracker process.
SIGNING_KEYS_TEXT = "bench:" + base64.b64encode(bytes(range(100, 132))).decode()
SIGNING_KEY = parse_signing_keys(SIGNING_KEYS_TEXT)[0]
# Three parameters an ad server puts in a click link (ids, all unreserved characters).
LINK_PARAMS = (("campaign", "c-20261201"), ("creative", "cr-48213"), ("site", "news.example.com"))
LINK_DAYS = 30
ORIGIN = "http://127.0.0.1"


def link(params: Sequence[tuple[str, str]] = LINK_PARAMS, days: int = LINK_DAYS) -> str:
    """The path and query of a signed click link, as the tracker receives it."""
    expires_at = int(time.time()) + days * 86_400
    url = signed_click_url(ORIGIN, DEMO_PROGRAM_ID, params, SIGNING_KEY, expires_at)
    return url.removeprefix(ORIGIN)


def unsigned_link(params: Sequence[tuple[str, str]] = LINK_PARAMS) -> str:
    """The same click without exp, kid and sig."""
    query = "&".join(f"{key}={value}" for key, value in [("program", DEMO_PROGRAM_ID), *params])
    return f"/v1/click?{query}"


def distinct_links(count: int) -> list[str]:
    """`count` signed links that differ in their campaign, as the links of many ads do."""
    return [link((("campaign", f"c-{n:08d}"), *LINK_PARAMS[1:])) for n in range(count)]


def tampered(path_and_query: str) -> str:
    """The link with one signed value changed: the HMAC is computed, and does not match."""
    return path_and_query.replace("cr-48213", "cr-48214")
