"""What a browser sends with an ad's image request, as the bench's requests and inputs carry it."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# With a query, so that the privacy step's minimisation has something to cut.
REFERER = "https://news.example.com/articles/2026/spring-sale?utm_source=newsletter&sid=8f3a2c"
ADDRESS = "203.0.113.57"

Headers = CIMultiDictProxy[str]  # `request.headers` as aiohttp hands it to the handler


def headers(user_agent: str = USER_AGENT, *extra: tuple[str, str]) -> Headers:
    """What a browser sends for an <img> of another site (Firefox's and Chrome's set, trimmed),
    and `extra` after it."""
    return CIMultiDictProxy(
        CIMultiDict(
            [
                ("Host", "track.example.com"),
                ("User-Agent", user_agent),
                ("Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
                ("Accept-Language", "en-US,en;q=0.9"),
                ("Accept-Encoding", "gzip, deflate, br, zstd"),
                ("Referer", REFERER),
                ("Sec-Fetch-Dest", "image"),
                ("Sec-Fetch-Mode", "no-cors"),
                ("Sec-Fetch-Site", "cross-site"),
                ("Connection", "keep-alive"),
                *extra,
            ]
        )
    )
