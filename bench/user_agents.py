"""User agents as the tracker receives them: realistic browsers' and crawlers', many distinct ones
for the crawler memo's misses, and fresh copies of one for its hits."""

from __future__ import annotations

import random
from collections.abc import Callable

from tracker.privacy.client_fields import MAX_USER_AGENT

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SEED = 11  # the same user agents in every run
MAX_DRAWS = 100  # per distinct user agent wanted: draws collide rarely, but the loop is bounded
PHONES = ("SM-S918B", "SM-A546B", "Pixel 8", "Pixel 7a", "moto g(60)", "22101316G", "K")
IPHONE_OS = ("17_6_1", "18_1", "18_2", "16_7_10")

Template = Callable[[random.Random], str]


def fresh(text: str, count: int) -> list[str]:
    """`count` distinct str objects equal to `text`, none hashed yet: what the handler gets from
    aiohttp's parser on each request."""
    return fresh_each([text] * count)


def fresh_each(agents: list[str]) -> list[str]:
    """A new, unhashed copy of each."""
    return [(agent + " ")[:-1] for agent in agents]


def chrome_version(rng: random.Random) -> str:
    """A Chrome (or Edge) version of the releases that make most traffic."""
    return f"{rng.randint(118, 131)}.0.{rng.randint(6000, 6800)}.{rng.randint(1, 250)}"


def firefox(version: int) -> str:
    return (
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{version}.0) Gecko/20100101"
        f" Firefox/{version}.0"
    )


BROWSERS: tuple[Template, ...] = (
    lambda rng: (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{chrome_version(rng)} Safari/537.36"
    ),
    lambda rng: (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like"
        f" Gecko) Chrome/{chrome_version(rng)} Safari/537.36"
    ),
    lambda rng: (
        f"Mozilla/5.0 (Linux; Android {rng.randint(10, 14)}; {rng.choice(PHONES)})"
        f" AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{chrome_version(rng)} Mobile"
        " Safari/537.36"
    ),
    lambda rng: (
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {rng.choice(IPHONE_OS)} like Mac OS X)"
        f" AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{rng.randint(16, 18)}."
        f"{rng.randint(0, 6)} Mobile/15E148 Safari/604.1"
    ),
    lambda rng: firefox(rng.randint(115, 133)),
    lambda rng: (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        f" Chrome/{chrome_version(rng)} Safari/537.36 Edg/{chrome_version(rng)}"
    ),
)

# The crawlers that visit ad-carrying pages most: search, SEO, social previews, AI, monitors.
CRAWLERS: tuple[Template, ...] = (
    lambda rng: (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36"
        f" (KHTML, like Gecko) Chrome/{chrome_version(rng)} Mobile Safari/537.36 (compatible;"
        " Googlebot/2.1; +http://www.google.com/bot.html)"
    ),
    lambda rng: (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0;"
        f" +http://www.bing.com/bingbot.htm) Chrome/{chrome_version(rng)} Safari/537.36"
    ),
    lambda rng: (
        f"Mozilla/5.0 (compatible; AhrefsBot/7.{rng.randint(0, 99)}; +http://ahrefs.com/robot/)"
    ),
    lambda rng: (
        f"Mozilla/5.0 (compatible; SemrushBot/7~bl{rng.randint(1, 99)};"
        " +http://www.semrush.com/bot.html)"
    ),
    lambda rng: (
        f"Mozilla/5.0 (compatible; YandexBot/3.{rng.randint(0, 99)}; +http://yandex.com/bots)"
    ),
    lambda rng: (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1."
        f"{rng.randint(0, 99)}; +https://openai.com/gptbot)"
    ),
    lambda rng: (
        f"facebookexternalhit/1.{rng.randint(0, 99)}"
        " (+http://www.facebook.com/externalhit_uatext.php)"
    ),
    lambda rng: (
        f"Mozilla/5.0+(compatible; UptimeRobot/2.{rng.randint(0, 99)}; http://www.uptimerobot.com/)"
    ),
)


def browser_agents(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct, realistic browser user agents: Chrome, Safari, Firefox and Edge,
    differing in their build numbers as successive releases do."""
    return distinct_agents(BROWSERS, count, seed)


def crawler_agents(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct user agents of the crawlers, differing in their versions."""
    return distinct_agents(CRAWLERS, count, seed)


def distinct_agents(templates: tuple[Template, ...], count: int, seed: int) -> list[str]:
    """`count` distinct user agents, each from a template drawn at random."""
    rng = random.Random(seed)
    agents: dict[str, None] = {}  # ordered and distinct
    for _ in range(count * MAX_DRAWS):
        agents[rng.choice(templates)(rng)[:MAX_USER_AGENT]] = None
        if len(agents) == count:
            return list(agents)
    raise RuntimeError(f"{len(agents)} distinct user agents of {count} wanted")
