"""A little traffic for `make run`'s demo programs, so that the dashboard has something to show
at once: pixels and clicks from a few dozen made-up browsers, sent to the local tracker, and a
few orders reported back for clicks on a program with `click_id_param`.

Bounded (a few hundred requests, once, at start), to 127.0.0.1 only; a click's redirect is not
followed (its landing page is on the internet): its click id is read from the `Location` header.
Each browser has a user agent of its own, so each is a visitor of its own (the daily pseudonym
hashes the address and the user agent).
"""

from __future__ import annotations

import http.client
import time
from typing import NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

PIXELS_PER_BROWSER = 4
BROWSERS = 40
CLICKING_BROWSERS = 6  # a click-through rate of a few per cent, as display ads have
# Of the clicks on the converting program: these browsers' thank-you pages report an order,
# and the next click's order comes as a server-to-server postback.
CONVERTING_BROWSERS = 3
POSTBACKS = 1
POSTBACK_AGENT = "curl/8"
ORDER_VALUE = "49.90"
ORDER_CURRENCY = "EUR"
TIMEOUT_SECONDS = 5.0


class Sent(NamedTuple):
    pixels: int
    clicks: int
    conversions: int


class ConvertingProgram(NamedTuple):
    """A program with `click_id_param`: its clicks' redirects carry a click id in that param."""

    program_id: str
    click_id_param: str


def browser(number: int) -> str:
    version = 110 + number % 20
    return (
        f"Mozilla/5.0 (X11; Linux x86_64; rv:{version}.0) Gecko/20100101 Firefox/{version}.{number}"
    )


def order_id(run: str, number: int) -> str:
    """The demo's order ids: unique per run (`run`), so that no order is a duplicate of the last
    run's (the attribution table keeps order ids for 400 days)."""
    return f"DEMO-{run}-{number}"


def send_demo_traffic(
    port: int,
    programs: tuple[str, ...],
    converting: ConvertingProgram | None = None,
    run: str | None = None,
) -> Sent:
    """Pixels of every browser for each program, clicks of a few on the first (and on
    `converting`), then conversions for some of the latter's clicks; what was answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    pixels = clicks = 0
    click_ids: list[tuple[str, str]] = []  # (click id, the browser that clicked)
    try:
        for number in range(BROWSERS):
            agent = browser(number)
            for program in programs:
                for _ in range(PIXELS_PER_BROWSER):
                    pixels += _get(connection, f"/v1/pixel?program={program}", agent)[0] == 200
            if number < CLICKING_BROWSERS:
                clicks += _get(connection, f"/v1/click?program={programs[0]}", agent)[0] == 302
                if converting is not None:
                    status, click_id = _click(connection, converting, agent)
                    clicks += status == 302
                    click_ids += [(click_id, agent)] if click_id else []
        conversions = 0
        if converting is not None:
            run = run or time.strftime("%Y%m%d%H%M%S")
            conversions = _convert(connection, converting.program_id, click_ids, run)
    finally:
        connection.close()
    return Sent(pixels, clicks, conversions)


def _click(
    connection: http.client.HTTPConnection, program: ConvertingProgram, agent: str
) -> tuple[int, str]:
    """A click on `program`: its status and the click id its redirect carries ("" when none)."""
    status, location = _get(connection, f"/v1/click?program={program.program_id}", agent)
    query = parse_qs(urlsplit(location).query)
    return status, query.get(program.click_id_param, [""])[0]


def _convert(
    connection: http.client.HTTPConnection,
    program: str,
    click_ids: list[tuple[str, str]],
    run: str,
) -> int:
    """Orders for the first clicks: from the clicking browser's thank-you page, then postbacks
    from the advertiser's server; how many were answered."""
    answered = 0
    for number, (click_id, agent) in enumerate(click_ids[: CONVERTING_BROWSERS + POSTBACKS]):
        query = {
            "program": program,
            "click_id": click_id,
            "order_id": order_id(run, number + 1),
            "value": ORDER_VALUE,
            "currency": ORDER_CURRENCY,
        }
        sender = agent if number < CONVERTING_BROWSERS else POSTBACK_AGENT
        answered += _get(connection, f"/v1/conversion?{urlencode(query)}", sender)[0] == 200
    return answered


def _get(connection: http.client.HTTPConnection, path: str, agent: str) -> tuple[int, str]:
    """The answer's status and `Location` header ("" when none)."""
    connection.request("GET", path, headers={"User-Agent": agent})
    response = connection.getresponse()
    response.read()
    return response.status, response.getheader("Location") or ""
