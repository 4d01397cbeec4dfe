"""Known crawlers, bots and monitors by user agent, from a maintained list (crawlerdetect's
patterns, from the PHP CrawlerDetect project).

crawlerdetect's own matcher costs ~260 us for a new browser's user agent and up to 30 ms for 512
hostile characters (see crawler_patterns); the same lists compiled by crawler_patterns cost a
few us for a real user agent, linear in the length, and only the first MAX_MATCHED characters
are looked at (~25 us at most). On top of that each answer is memoized in a bounded memo, since
user agents repeat (a few browser versions make most traffic, and a crawler sends the same one
all day): a hit is one dict lookup.
"""

from __future__ import annotations

from functools import cache

from crawlerdetect.providers.crawlers import data as crawler_list
from crawlerdetect.providers.exclusions import data as exclusion_list

from tracker.integrity.crawler_patterns import CrawlerPatterns
from tracker.memo import BoundedMemo

MAX_USER_AGENTS = 8192  # at most MAX_USER_AGENT (512) characters each: ~5 MB
# How much of a user agent the patterns are matched against. A crawler that says what it is
# says it early: the longest of the lists' usual suspects (Googlebot or AdsBot behind a full
# mobile browser's user agent) name themselves before character 200. Longer text is padding or
# noise, and the matcher's cost grows with it (~0.1 us a character, in the worst case).
MAX_MATCHED = 256


@cache
def _compiled() -> CrawlerPatterns:
    # ~60 ms, once per process (the tracker builds its detector at start-up, not on a request).
    return CrawlerPatterns.compile(crawler_list, exclusion_list)


class CrawlerDetector:
    def __init__(self, max_entries: int = MAX_USER_AGENTS) -> None:
        self._patterns = _compiled()
        # The request path reads it directly (known.get): a hit is then one dict lookup.
        self.known: BoundedMemo[str, bool] = BoundedMemo(max_entries)

    def is_crawler(self, user_agent: str, matched: int = MAX_MATCHED) -> bool:
        """`user_agent` as the handler cut it (client_fields.MAX_USER_AGENT characters at most, so
        that no memo key is longer), its first `matched` characters (at most MAX_MATCHED) looked
        at. An answer from fewer than MAX_MATCHED of them is remembered only when that was the
        whole user agent: it is the answer a whole look gives."""
        known = self.known.get(user_agent)
        if known is None:
            known = self._patterns.is_crawler(user_agent[:matched])
            if matched >= MAX_MATCHED or len(user_agent) <= matched:
                self.known.remember(user_agent, known)
        return known
