"""Known crawlers, bots and monitors by user agent, from a maintained list (crawlerdetect's
patterns, from the PHP CrawlerDetect project).

The list is one large regular expression: about 200 us per user agent here, far too much for
every request. User agents repeat (a few browser versions make most traffic, and a crawler sends
the same one all day), so each answer is memoized in a bounded memo: a hit is one dict lookup.
"""

from __future__ import annotations

from crawlerdetect import CrawlerDetect

from tracker.memo import BoundedMemo

MAX_USER_AGENTS = 8192  # at most MAX_USER_AGENT (512) characters each: ~5 MB


class CrawlerDetector:
    def __init__(self, max_entries: int = MAX_USER_AGENTS) -> None:
        self._detect = CrawlerDetect()
        # The request path reads it directly (known.get): a hit is then one dict lookup.
        self.known: BoundedMemo[str, bool] = BoundedMemo(max_entries)
        self.is_crawler("")  # compile the patterns now (~30 ms), not on the first request

    def is_crawler(self, user_agent: str) -> bool:
        """`user_agent` as the handler cut it (client_fields.MAX_USER_AGENT characters at most, so
        that no memo key is longer)."""
        known = self.known.get(user_agent)
        if known is None:
            known = self.known.remember(user_agent, bool(self._detect.isCrawler(user_agent)))
        return known
