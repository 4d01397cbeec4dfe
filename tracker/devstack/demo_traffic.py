"""A little traffic for `make run`'s demo programs, so that the dashboard has something to show
at once: pixels and clicks from a few dozen made-up browsers, sent to the local tracker.

Bounded (a few hundred requests, once, at start), to 127.0.0.1 only; a click's redirect is not
followed (its landing page is on the internet). Each browser has a user agent of its own, so
each is a visitor of its own (the daily pseudonym hashes the address and the user agent).
"""

from __future__ import annotations

import http.client
from typing import NamedTuple

PIXELS_PER_BROWSER = 4
BROWSERS = 40
CLICKING_BROWSERS = 6  # a click-through rate of a few per cent, as display ads have
TIMEOUT_SECONDS = 5.0


class Sent(NamedTuple):
    pixels: int
    clicks: int


def browser(number: int) -> str:
    version = 110 + number % 20
    return (
        f"Mozilla/5.0 (X11; Linux x86_64; rv:{version}.0) Gecko/20100101 Firefox/{version}.{number}"
    )


def send_demo_traffic(port: int, programs: tuple[str, ...]) -> Sent:
    """Pixels of every browser for each program, clicks of a few on the first; what was answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    pixels = clicks = 0
    try:
        for number in range(BROWSERS):
            agent = browser(number)
            for program in programs:
                for _ in range(PIXELS_PER_BROWSER):
                    pixels += _get(connection, f"/v1/pixel?program={program}", agent) == 200
            if number < CLICKING_BROWSERS:
                clicks += _get(connection, f"/v1/click?program={programs[0]}", agent) == 302
    finally:
        connection.close()
    return Sent(pixels, clicks)


def _get(connection: http.client.HTTPConnection, path: str, agent: str) -> int:
    connection.request("GET", path, headers={"User-Agent": agent})
    response = connection.getresponse()
    response.read()
    return response.status
