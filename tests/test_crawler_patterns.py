"""The crawler check (tracker.integrity.crawler_patterns, tracker.integrity.crawlers): the same
answers as crawlerdetect's own matcher, from the same lists compiled for linear time, and a
bound on how much of a user agent is looked at."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import pytest
from crawlerdetect import CrawlerDetect
from crawlerdetect.providers.crawlers import data as crawler_list
from crawlerdetect.providers.exclusions import data as exclusion_list
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tracker.integrity.crawler_patterns import CrawlerPatterns
from tracker.integrity.crawlers import MAX_MATCHED, CrawlerDetector

# What crawlerdetect answers (its lru_cache makes repeated strings cheap, nothing else).
CRAWLERDETECT = CrawlerDetect()
DETECTOR = CrawlerDetector()
COMPILED = CrawlerPatterns.compile(crawler_list, exclusion_list)

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/485.0.0.37.109;FBBV/654;FBDV/iPhone14,5;FBMD/iPhone;"
    "FBSN/iOS;FBSV/17.6;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Mobile Safari/537.36 OPR/86.0.0.0",
]
CRAWLERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
    "+https://openai.com/gptbot)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Java/17.0.2",
    "Go-http-client/1.1",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
]


def test_real_user_agents_are_classified_as_crawlerdetect_does() -> None:
    for agent in BROWSERS:
        assert not CRAWLERDETECT.is_crawler(agent), agent  # the lists' own view of them
        assert not COMPILED.is_crawler(agent), agent
    for agent in CRAWLERS:
        assert CRAWLERDETECT.is_crawler(agent), agent
        assert COMPILED.is_crawler(agent), agent


def test_no_crawler_pattern_matches_empty_text() -> None:
    """crawlerdetect counts only a match that captured something; the compiled form counts any
    match. The two agree because no pattern of the list can match nothing."""
    assert not any(re.fullmatch(pattern, "", re.IGNORECASE) for pattern in crawler_list)


# Pieces real and hostile user agents are made of: the literal parts of the patterns (so that
# matches, near misses and exclusions meet), browser tokens, and odd characters.
LITERALS = sorted({re.sub(r"\\(.)", r"\1", re.sub(r"[\^$]", "", p))[:24] for p in crawler_list})
TOKENS = [
    "Mozilla/5.0 ",
    "(compatible; ",
    "AppleWebKit/537.36 ",
    "(KHTML, like Gecko) ",
    "Safari/537.36",
    " Chrome/131.0.0.0",
    "Windows NT 10.0; ",
    "CUBOT",
    "; M bot",
    "bot",
    "Crawl",
    "\t",
    " ",
    "é",
    "K",  # the Kelvin sign: case-folds to k
]
PIECE = st.sampled_from(LITERALS) | st.sampled_from(TOKENS) | st.text(max_size=6)


def case_shuffled(draw: Callable[[st.SearchStrategy[bool]], bool], text: str) -> str:
    return "".join(char.swapcase() if draw(st.booleans()) else char for char in text)


@st.composite
def user_agents(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(PIECE, min_size=1, max_size=5))
    return case_shuffled(draw, "".join(pieces))[:160]


@hypothesis_settings(max_examples=400)
@given(user_agents())
def test_any_ascii_user_agent_gets_crawlerdetects_answer(agent: str) -> None:
    if not agent.isascii():
        # str.lower stands in for the regex engine's case folding, which differs for a few
        # characters no crawler's user agent has; the ASCII part of the text still decides.
        agent = agent.encode("ascii", "ignore").decode()
    assert COMPILED.is_crawler(agent) == CRAWLERDETECT.is_crawler(agent)


# The compiler on patterns of every kind it meets, against crawlerdetect's algorithm itself
# (exclusions deleted, then one case-insensitive search; a match counts if it captured text).


def reference(crawlers: Sequence[str], exclusions: Sequence[str]) -> Callable[[str], bool]:
    crawler = re.compile("(" + "|".join(crawlers) + ")", re.IGNORECASE)
    excluded = re.compile("(" + "|".join(exclusions) + ")", re.IGNORECASE)

    def is_crawler(agent: str) -> bool:
        agent = excluded.sub("", agent.strip())
        found = crawler.search(agent) if agent else None
        return found is not None and any(found.groups())

    return is_crawler


SYNTHETIC_CRAWLERS = [
    "^Ab",  # anchored
    "^Cd|Ef\\/[0-9]",  # an alternative that is anchored, and one that is not
    "[a-z0-9\\-_]*(bot|crawl)",  # a leading class repeated: dropped, its group unwrapped
    "Gh(?!Ij)",  # a lookahead after a literal prefix
    "Kl ?Mn",  # a quantified character ends the literal prefix
    "Op(qr)?St",  # an optional group after the prefix
    "[A-C]x[A-C]",  # a class with capitals: no literal prefix, kept as it is
    "Uv\\.W$",  # an escaped dot and an end anchor
    "Yz\\\\Q",  # an escaped backslash
    "Ab",  # a prefix of a longer pattern
    "Abc",
]
SYNTHETIC_EXCLUSIONS = [
    "Zz.[\\d\\.]*",
    "(like )?Gk",
    "[ ]Qq",
    "Bo",
    "Botx",
]


@pytest.mark.parametrize(
    "exclusions",
    [
        pytest.param(SYNTHETIC_EXCLUSIONS, id="grouped by first character"),
        pytest.param([*SYNTHETIC_EXCLUSIONS, "[xy]*w"], id="plain alternation"),
    ],
)
def test_the_compiled_form_of_every_kind_of_pattern_answers_as_the_original(
    exclusions: list[str],
) -> None:
    compiled = CrawlerPatterns.compile(SYNTHETIC_CRAWLERS, exclusions)
    original = reference(SYNTHETIC_CRAWLERS, exclusions)
    cases = ["", " ", "ab", " ab", "xab", "gh", "ghij", "ghIJk", "klmn", "kl mn", "kl  mn"]
    cases += ["opst", "opqrst", "OPQRST", "bxc", "uv.w", "uv.wx", "uvxw", "yz\\q", "abcd"]
    cases += ["cd", "ef/1", "bzz1.2ot", "bot", "bo", "botx", "like gkbot", "gk", " qqbot"]
    cases += ["robot", "cRawler", "zz/1.2.3bo", "Bo\tt", "like  gk"]
    for agent in cases:
        assert compiled.is_crawler(agent) == original(agent), agent
    assert compiled.anchored is not None
    if exclusions == SYNTHETIC_EXCLUSIONS:  # the same first character: one group, in order
        assert "b(?:o|otx)" in compiled.exclusions.pattern
    # Without a literal prefix: kept as it is after the trie, its class given lower-case too.
    assert compiled.anywhere.pattern.endswith("|[A-Ca-c]x[A-Ca-c]")


@hypothesis_settings(max_examples=300)
@given(st.text(alphabet="abcdgikloqrstwxyzABGKQZ1. /\\-?!\t", max_size=40))
def test_the_compiled_synthetic_patterns_answer_as_the_original_on_any_text(agent: str) -> None:
    for exclusions in (SYNTHETIC_EXCLUSIONS, [*SYNTHETIC_EXCLUSIONS, "[xy]*w"]):
        compiled = CrawlerPatterns.compile(SYNTHETIC_CRAWLERS, exclusions)
        assert compiled.is_crawler(agent) == reference(SYNTHETIC_CRAWLERS, exclusions)(agent)


# The detector: memoized, and bounded in what it looks at.


def test_only_the_first_max_matched_characters_are_looked_at() -> None:
    detector = CrawlerDetector()
    filler = "x" * (MAX_MATCHED - len("Googlebot"))
    assert detector.is_crawler(filler + "Googlebot")
    assert not detector.is_crawler(filler + "-Googlebot")  # one character later: not looked at
    # Remembered under the whole text it was given.
    assert detector.known[filler + "Googlebot"] is True
    assert detector.known[filler + "-Googlebot"] is False


@pytest.mark.parametrize(
    "agent",
    [
        pytest.param("a" * MAX_MATCHED, id="letters"),
        pytest.param("bo" * (MAX_MATCHED // 2), id="near misses"),
        pytest.param(string.printable * 6, id="printable"),
        pytest.param("\u0130" * MAX_MATCHED, id="non-ASCII that lower-cases longer"),
    ],
)
def test_hostile_user_agents_are_classified_without_error(agent: str) -> None:
    assert DETECTOR.is_crawler(agent) is False
    assert DETECTOR.is_crawler(agent) is False  # from the memo
