"""The referer, minimised: a query or fragment can carry an e-mail address, a session token or a
search term, so only scheme, host (and port) and path are kept; with consent withheld, only the
origin (which site showed the ad)."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_REFERER = 512
# Parsing a longer header than this is pointless: what is kept is cut to MAX_REFERER anyway.
MAX_PARSED = 4 * MAX_REFERER


def minimised_referer(referer: str, *, origin_only: bool = False) -> str:
    """`scheme://host[:port]/path`, or `scheme://host[:port]`; '' for anything that is not an
    absolute URL with a host. Never raises."""
    if not referer:
        return ""
    text = referer[:MAX_PARSED]
    if not text.isprintable() or " " in text:
        return ""  # not a URL a browser sends; never stored half-parsed
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
