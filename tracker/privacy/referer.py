"""The referer, minimised: a query or fragment can carry an e-mail address, a session token or a
search term, so only scheme, host (and port) and path are kept; with consent withheld, only the
origin (which site showed the ad)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_REFERER = 512
# Longer than any host name (253) with a port. Browsers leave user:password@ out of a Referer, so
# a longer authority is not one a browser sends; and the cost of a long header is in parsing it
# (a port of 2,000 digits, or an IPv6 literal as long, took ~35 us, ten times a real referer).
MAX_AUTHORITY = 300
# Parsing more of a header than this is pointless: what is kept (scheme, an authority of at most
# MAX_AUTHORITY, the path) is cut to MAX_REFERER, so it lies in the first MAX_REFERER +
# MAX_AUTHORITY characters and a scheme. A 2 KiB parse took ~12 us.
MAX_PARSED = 1024
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


def minimised_referer(referer: str, *, origin_only: bool = False) -> str:
    """`scheme://host[:port]/path`, or `scheme://host[:port]`; '' for anything that is not an
    absolute URL with a host. Never raises."""
    if not referer:
        return ""
    text = referer[:MAX_PARSED]
    authority = _browser_sent(text)
    if authority is None:
        return ""  # never stored half-parsed
    if authority:
        # Only what is kept is parsed: the origin, and as much path as MAX_REFERER can hold
        # (urlsplit copies and scans all it is given: ~8 us for a KiB, a fifth of a pixel).
        text = text[: authority if origin_only else authority + MAX_REFERER]
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host:
        return ""
    # Rebuilt from the host alone: a user:password@ part never survives.
    host = f"[{host}]" if ":" in host else host
    origin = f"{parts.scheme}://{host}" if port is None else f"{parts.scheme}://{host}:{port}"
    if origin_only:
        return origin[:MAX_REFERER]
    return (origin + parts.path)[:MAX_REFERER]


def _browser_sent(text: str) -> int | None:
    """Where the authority of `text` ends (0 when it has no `scheme://authority`), or None
    when `text` cannot be a URL a browser sent: not printable, a space, or an authority longer
    than MAX_AUTHORITY (checked before parsing, where a long one costs)."""
    if not text.isprintable() or " " in text:
        return None
    authority = _AUTHORITY.match(text)
    if authority is None:
        return 0
    if len(authority.group(1)) > MAX_AUTHORITY:
        return None
    return authority.end()
