"""The reports dashboard in a real browser, against a real `reports serve`.

Debian's headless Chromium (chromedriver, selenium), its clock in Europe/Berlin, opens the page
that `reports serve` serves (on a real redis-server and moto's DynamoDB), pastes a key that
`reports keys create` made, and reads what the page shows; the test compares it with the API's
own answers for the same parameters, and those with the rollups it seeded:

- only the key's customer's programs are offered; the browser's zone is preselected; the range
  defaults to the last 7 days, today included;
- the totals cards, the table (one row per period, the period still counting marked) and the
  chart (lines of the series' colours on its canvas) show the API's numbers, by day and by hour:
  conversions, unattributed ones and revenue in two currencies (a card and a column each, the
  API's decimal strings to the character) included, and no revenue card or column without any;
- the CSV download holds exactly the table's rows, and is the API's CSV byte for byte;
- everything comes from the service's own origin under its Content-Security-Policy: no request
  elsewhere, no CSP violation, no console error; the key travels in a header only, is kept in
  the tab's sessionStorage only, and "Forget key" removes it;
- a key the service refuses reads "Key not accepted"; a range the API would refuse is stopped
  in the page before any request; past the rate limit the page says when to try again.

Needs `chromium` and `chromedriver` (`make browser`); without them the tests skip, unless CI is
set: then they fail.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options as ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from reports.api import CONTENT_SECURITY_POLICY
from reports.fields import money
from tests.support.browser import (
    CHROME_ARGS,
    PAGE_LOAD_TIMEOUT,
    SCRIPT_TIMEOUT,
    Browser,
    browser_binaries,
)
from tests.support.programs import program, write_programs
from tests.support.report_stack import (
    create_tables,
    dynamodb,
    fresh_tables,
    put_bucket,
    report_env,
    reports_process,
)

pytestmark = pytest.mark.timeout(120)

ZONE = "Europe/Berlin"  # the browser's own time zone
CUSTOMER, OTHER_CUSTOMER = 1, 2
SHOP, BLOG, THEIRS = "c1-shop", "c1-blog", "c2-news"
PROGRAMS = [
    program(SHOP, customer_id=CUSTOMER, program_name="Shop banner"),
    program(BLOG, customer_id=CUSTOMER, program_name="Blog banner"),  # listed first: by name
    program(THEIRS, customer_id=OTHER_CUSTOMER, program_name="Their news"),
]
UNKNOWN_KEY = "adt_000000000000_" + "A" * 43
# The table's columns and the report fields they show; "Invalid" sums the `ivt` object.
COLUMNS = {
    "Impressions": "impressions",
    "Billable impr.": "billable_impressions",
    "Clicks": "clicks",
    "Billable clicks": "billable_clicks",
    "Uniques": "uniques",
    "Invalid": "ivt",
    "Events": "events",
    "Conversions": "conversions",
    "Unattributed": "unattributed_conversions",
}
REVENUE_COLUMN = "Revenue "  # then the currency: a column per currency with revenue in range
REVENUE_CARD = "revenue."  # then the currency: `<dd data-metric=revenue.CUR>`
CARDS = tuple(COLUMNS.values())  # each has a totals card, `<dd data-metric=NAME>`
# The chart's line colours (style.css): each must be on the canvas.
LINE_COLOURS = {
    "impressions": (29, 78, 216),
    "billable impressions": (13, 148, 136),
    "clicks": (217, 119, 6),
    "billable clicks": (147, 51, 234),
    "conversions": (219, 39, 119),
}

# Installed before the page's own scripts run: every CSP violation the page meets.
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
# What the page shows: the form, the totals cards and the table.
READ_PAGE = """
const text = (element) => element.textContent.trim();
const all = (selector) => [...document.querySelectorAll(selector)];
return {
  title: text(document.getElementById('report-title')),
  from: document.getElementById('from').value,
  to: document.getElementById('to').value,
  tz: document.getElementById('tz').value,
  cards: Object.fromEntries(all('#totals dd[data-metric]').map((d) => [d.dataset.metric, text(d)])),
  head: all('#rows thead th').map(text),
  rows: all('#rows tbody tr').map((tr) => ({
    period: tr.querySelector('time').dateTime,
    counting: tr.classList.contains('counting'),
    cells: [...tr.querySelectorAll('td')].map(text),
  })),
  totals: all('#rows tfoot td').map(text),
  legend: text(document.getElementById('legend')),
};
"""
# True once the page fits a narrow window: no sideways scrolling but the table's own box.
FITS_NARROW = """
const chart = document.querySelector('#chart canvas').getBoundingClientRect();
const page = document.documentElement;
return page.scrollWidth <= page.clientWidth && chart.width > 0 && chart.right <= page.clientWidth;
"""
# How many answers from the API the page has had.
API_ANSWERS = """
return performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/')).length;
"""
# How many pixels of the chart's canvas are near each colour.
COUNT_COLOURS = """
const canvas = document.querySelector('#chart canvas');
const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const colours = arguments[0];
const counts = Object.fromEntries(Object.keys(colours).map((name) => [name, 0]));
let painted = 0;
for (let i = 0; i < pixels.length; i += 4) {
  if (pixels[i + 3] === 0) continue;
  painted += 1;
  for (const [name, [r, g, b]] of Object.entries(colours)) {
    if (Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 40) {
      counts[name] += 1;
    }
  }
}
return {width: canvas.width, height: canvas.height, painted, counts};
"""


@dataclass
class Stack:
    base_url: str
    key: str
    seeded: Counter[str]  # SHOP's counters summed over every bucket seeded

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


# ---------------------------------------------------------------------------------------------
# The service: tables, programs, rollups, a key, `reports serve`


def quarter_hour(instant: datetime) -> datetime:
    return instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)


async def seed_rollups(moto_url: str, rollups: str) -> Counter[str]:
    """Ten buckets of SHOP over the last four days and a bit, the quarter hour of now among
    them: all inside the default range, the period still counting included; revenue in EUR
    in each, and in USD (to the micro: "….000001") in three, one of the last three days. Their
    sums."""
    now = quarter_hour(datetime.now(UTC))
    seeded: Counter[str] = Counter()
    async with dynamodb(moto_url) as client:
        for index, back in enumerate(timedelta(days=d, hours=h) for d in range(5) for h in (0, 5)):
            counts = {
                "impressions": 12_000 + 731 * index,
                "billable_impressions": 11_000 + 689 * index,
                "clicks": 150 + 7 * index,
                "billable_clicks": 140 + 6 * index,
                "events": 30 + index,
                "ivt.IVT_KNOWN_CRAWLER": 40 + index,
                "validation.OK": 12_180 + 738 * index,
                "conversions": 3 + index % 3,
                "unattributed_conversions": index % 2,
                "revenue.EUR": 12_500_000 * (1 + index % 3),
            }
            if index % 4 == 1:
                counts["revenue.USD"] = 7_000_001 * index
            bucket = (now - back).strftime("%Y-%m-%dT%H:%MZ")
            visitors = [f"visitor-{back.days}-{n}" for n in range(30 + index)]
            await put_bucket(client, rollups, SHOP, bucket, counts, visitors)
            seeded.update(counts)
    return seeded


async def create_key(env: dict[str, str], customer_id: int) -> str:
    """`reports keys create`, as an operator runs it: the key it prints."""
    command = [sys.executable, "-m", "reports", "keys", "create", "--customer", str(customer_id)]
    result = await asyncio.to_thread(
        subprocess.run,
        [*command, "--name", "dashboard test"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.returncode}\n{result.stderr}"
    created = json.loads(result.stdout.strip().splitlines()[-1])
    assert created["customer_id"] == customer_id
    return str(created["key"])


async def wait_ready(base_url: str, timeout: float = 30.0) -> None:
    """Until /readyz says 200: the stores answer and the programs are loaded."""
    deadline = time.monotonic() + timeout
    status = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            async with session.get(f"{base_url}/readyz") as response:
                status = response.status
            if status == 200:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"reports serve not ready after {timeout}s: /readyz {status}")


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest, moto_url: str, redis_url: str
) -> AsyncIterator[Stack]:
    """The service with its data; settings from an indirect parameter, if any."""
    tables = fresh_tables()
    env = {
        **report_env(moto_url, redis_url, tables, **getattr(request, "param", {})),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    async with dynamodb(moto_url) as client:
        await create_tables(client, tables)
    seeded = await seed_rollups(moto_url, tables.rollups)
    await write_programs(redis_url, PROGRAMS)
    key = await create_key(env, CUSTOMER)
    async with reports_process(env) as process:
        await wait_ready(process.base_url)
        yield Stack(process.base_url, key, seeded)


async def api_report(stack: Stack, program_id: str, params: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            stack.url(f"/v1/reports/{program_id}"),
            params=params,
            headers={"Authorization": f"Bearer {stack.key}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


# ---------------------------------------------------------------------------------------------
# The browser


class Dashboard(Browser):
    """The user's moves on the page (selenium in a thread: see tests.support.browser)."""

    async def paste_key(self, key: str) -> None:
        def paste() -> None:
            self.driver.find_element(By.ID, "key-input").send_keys(key)
            self.driver.find_element(By.CSS_SELECTOR, "#key-form [type=submit]").click()

        await asyncio.to_thread(paste)

    async def press(self, selector: str) -> None:
        await asyncio.to_thread(lambda: self.driver.find_element(By.CSS_SELECTOR, selector).click())

    async def choose_program(self, program_id: str) -> None:
        def choose() -> None:
            Select(self.driver.find_element(By.ID, "program")).select_by_value(program_id)

        await asyncio.to_thread(choose)

    async def set_date(self, field_id: str, day: date) -> None:
        """As a date picker does: the value, then a change event."""
        await self.script(
            "const field = document.getElementById(arguments[0]); field.value = arguments[1];"
            " field.dispatchEvent(new Event('change', {bubbles: true}));",
            field_id,
            day.isoformat(),
        )


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def chrome(tmp_path: Path, downloads: Path) -> Iterator[Dashboard]:
    """Headless Chromium keeping its console and network logs, in ZONE, saving downloads to
    `downloads`, watching for CSP violations from the first script of every page on."""
    chromium, chromedriver = browser_binaries()
    options = ChromeOptions()
    options.binary_location = chromium
    for arg in (*CHROME_ARGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=ChromeService(executable_path=chromedriver), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ZONE})
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_CSP})
        yield Dashboard(driver)
    finally:
        driver.quit()


async def wait_for_report(browser: Browser, *title_parts: str) -> dict[str, Any]:
    """Once the report's title names all of `title_parts`: what the page shows."""

    def shown(driver: webdriver.Chrome) -> bool:
        title = driver.execute_script(
            "const report = document.getElementById('report');"
            " return report.hidden ? '' : document.getElementById('report-title').textContent"
        )
        return all(part in title for part in title_parts)

    await browser.wait_for(shown)
    page: dict[str, Any] = await browser.script(READ_PAGE)
    return page


async def wait_for_text(browser: Browser, element_id: str, text: str) -> str:
    script = "const e = document.getElementById(arguments[0]); return e.hidden ? '' : e.textContent"
    await browser.wait_for(lambda driver: text in driver.execute_script(script, element_id))
    shown: str = await browser.script(script, element_id)
    return shown


def chrome_log(browser: Browser, kind: str) -> list[dict[str, Any]]:
    """Chromium's `browser` (console) or `performance` log since the last read of it."""
    entries: list[dict[str, Any]] = browser.driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def network_requests(browser: Browser) -> list[dict[str, Any]]:
    """Every request the page sent since the last call (Chromium's performance log)."""
    requests = []
    for entry in chrome_log(browser, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"])
    return requests


def fetched_from(url: str) -> str:
    """The origin a URL is fetched from: `scheme://host:port`, a blob's creator's, or `data:`
    for data in the URL itself (Chromium's own date-picker icon, for one)."""
    parts = urlsplit(url)
    if parts.scheme == "blob":
        return fetched_from(parts.path)
    if parts.scheme == "data":
        return "data:"
    return f"{parts.scheme}://{parts.netloc}"


def console_errors(browser: Browser) -> list[str]:
    return [e["message"] for e in chrome_log(browser, "browser") if e["level"] == "SEVERE"]


# ---------------------------------------------------------------------------------------------
# Comparisons


def number(text: str) -> int:
    """A count as the page shows it, thousands separators and all."""
    digits = re.sub(r"\D", "", text)
    assert digits, f"no number in {text!r}"
    return int(digits)


def field(counts: dict[str, Any], name: str) -> int:
    return sum(counts["ivt"].values()) if name == "ivt" else int(counts[name])


def cell_columns(page: dict[str, Any]) -> dict[str, int]:
    """Each field of COLUMNS by its index among a row's cells (the period is the row's
    header: the first column, no cell)."""
    return {name: page["head"].index(label) - 1 for label, name in COLUMNS.items()}


def revenue_columns(page: dict[str, Any]) -> dict[str, int]:
    """Each currency's revenue column by its index among a row's cells."""
    return {
        label.removeprefix(REVENUE_COLUMN): index - 1
        for index, label in enumerate(page["head"])
        if label.startswith(REVENUE_COLUMN)
    }


def revenue_cards(page: dict[str, Any]) -> dict[str, str]:
    """The revenue cards' amounts by currency, as shown."""
    return {
        name.removeprefix(REVENUE_CARD): text
        for name, text in page["cards"].items()
        if name.startswith(REVENUE_CARD)
    }


def assert_page_shows(page: dict[str, Any], report: dict[str, Any]) -> None:
    """The cards show the API's totals; the table has its rows, one per period, in order.
    Revenue: a card and a column per currency of the range, in the API's order, each amount
    the API's decimal string exactly."""
    assert {name: number(page["cards"][name]) for name in CARDS} == {
        name: field(report["totals"], name) for name in CARDS
    }
    assert revenue_cards(page) == report["totals"]["revenue"]
    assert list(revenue_cards(page)) == list(report["totals"]["revenue"])
    columns = cell_columns(page)
    currencies = revenue_columns(page)
    assert list(currencies) == list(report["totals"]["revenue"])
    assert len(page["head"]) == 1 + len(COLUMNS) + 1 + len(currencies)  # period, CTR
    assert [row["period"] for row in page["rows"]] == [row["period"] for row in report["rows"]]
    for shown, row in zip(page["rows"], report["rows"], strict=True):
        assert {name: number(shown["cells"][i]) for name, i in columns.items()} == {
            name: field(row, name) for name in columns
        }, row["period"]
        assert {cur: shown["cells"][i] for cur, i in currencies.items()} == row["revenue"]
    totals = page["totals"]  # the table's last line
    assert {name: number(totals[i]) for name, i in columns.items()} == {
        name: field(report["totals"], name) for name in columns
    }
    assert {cur: totals[i] for cur, i in currencies.items()} == report["totals"]["revenue"]


def assert_no_revenue(page: dict[str, Any]) -> None:
    assert revenue_cards(page) == {}
    assert revenue_columns(page) == {}
    assert len(page["head"]) == 1 + len(COLUMNS) + 1


def today_in_zone() -> set[date]:
    """Today in ZONE, and a minute ago (the page may have looked just before midnight)."""
    now = datetime.now(ZoneInfo(ZONE))
    return {now.date(), (now - timedelta(minutes=1)).date()}


# ---------------------------------------------------------------------------------------------


async def test_dashboard_shows_the_apis_numbers(
    chrome: Dashboard, stack: Stack, downloads: Path
) -> None:
    await assert_served_under_csp(stack)
    network_requests(chrome)  # forget the blank tab's own
    await chrome.get(stack.url("/"))
    await chrome.paste_key(stack.key)
    first = await wait_for_report(chrome, "Blog banner", "by day")  # the first program by name
    options = await chrome.script(
        "return [...document.getElementById('program').options].map((o) => o.value)"
    )
    assert options == [BLOG, SHOP]  # customer 2's program is not offered
    assert first["tz"] == ZONE
    today = date.fromisoformat(first["to"])
    assert today in today_in_zone()
    assert date.fromisoformat(first["from"]) == today - timedelta(days=6)
    assert_no_revenue(first)  # BLOG has no rollups

    # SHOP by day, the default range: the API's numbers, which are all that was seeded.
    await chrome.choose_program(SHOP)
    await chrome.press("#show")
    by_day = await wait_for_report(chrome, "Shop banner", "by day")
    params = {"from": by_day["from"], "to": by_day["to"], "granularity": "day", "tz": ZONE}
    report = await api_report(stack, SHOP, params)
    assert len(report["rows"]) == 7
    for name in ("impressions", "billable_clicks", "conversions", "unattributed_conversions"):
        assert report["totals"][name] == stack.seeded[name]
    assert report["totals"]["revenue"] == {
        "EUR": money(stack.seeded["revenue.EUR"]),
        "USD": money(stack.seeded["revenue.USD"]),
    }
    assert_page_shows(by_day, report)
    assert [row["counting"] for row in by_day["rows"]] == [False] * 6 + [True]  # today
    assert "still counting" in by_day["legend"]

    # SHOP by hour over the last three days.
    await chrome.press("input[name=granularity][value=hour]")
    await chrome.set_date("from", today - timedelta(days=2))
    await chrome.press("#show")
    by_hour = await wait_for_report(chrome, "Shop banner", "by hour")
    params = {"from": by_hour["from"], "to": by_hour["to"], "granularity": "hour", "tz": ZONE}
    report = await api_report(stack, SHOP, params)
    assert 71 <= len(report["rows"]) <= 73  # a DST change among the three days: 71 or 73
    assert set(report["totals"]["revenue"]) == {"EUR", "USD"}
    assert_page_shows(by_hour, report)
    assert sum(row["counting"] for row in by_hour["rows"]) == 1

    await assert_chart_drawn(chrome)
    await chrome.press("#download")
    download = downloads / csv_name(params)
    await chrome.wait_for(lambda _: download.is_file())  # Chromium renames it once complete
    assert_csv_is_the_table(download, by_hour)
    assert download.read_bytes() == await api_csv(stack, SHOP, params)

    await assert_clean(chrome, stack)

    await assert_revenue_leaves_with_its_report(chrome)

    # The tab keeps the key: a reload shows a report at once. A phone's width: the chart
    # follows it, and only the table scrolls sideways.
    await chrome.get(stack.url("/"))
    await wait_for_report(chrome, "Blog banner", "by day")
    await asyncio.to_thread(chrome.driver.set_window_size, 390, 800)
    await chrome.wait_for(lambda driver: driver.execute_script(FITS_NARROW))
    assert console_errors(chrome) == []

    await chrome.press("#forget-key")
    await chrome.wait_for(
        lambda d: d.execute_script("return !document.getElementById('key-form').hidden")
    )
    assert await chrome.script("return sessionStorage.length") == 0
    assert await chrome.script("return document.getElementById('report').hidden") is True


async def assert_revenue_leaves_with_its_report(browser: Dashboard) -> None:
    """Back to BLOG: SHOP's revenue cards and columns are gone with its report."""
    await browser.choose_program(BLOG)
    await browser.press("#show")
    blog = await wait_for_report(browser, "Blog banner", "by hour")
    assert_no_revenue(blog)
    assert all(number(text) == 0 for text in blog["cards"].values() if text[:1].isdigit())
    assert console_errors(browser) == []


async def assert_served_under_csp(stack: Stack) -> None:
    """The page comes with the policy that the test's "no violation" is about."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(stack.url("/")) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def assert_chart_drawn(browser: Browser) -> None:
    """The chart's canvas is as wide as a 1280-pixel window allows and has a line of each
    series' colour on it."""
    chart = await browser.script(COUNT_COLOURS, LINE_COLOURS)
    assert chart["width"] > 500
    assert chart["painted"] > 1000, chart
    assert all(count > 20 for count in chart["counts"].values()), chart


def csv_name(params: dict[str, str]) -> str:
    return f"report-{SHOP}-{params['from']}-to-{params['to']}-by-{params['granularity']}.csv"


def assert_csv_is_the_table(path: Path, page: dict[str, Any]) -> None:
    """The downloaded file's records are the table's rows, period by period: every column
    of the table but CTR, the invalid traffic summed over its `ivt.` columns, the revenue as
    the same decimal strings."""
    with path.open(newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    assert [record["period"] for record in records] == [row["period"] for row in page["rows"]]
    columns = cell_columns(page)
    currencies = revenue_columns(page)
    assert currencies
    for record, row in zip(records, page["rows"], strict=True):
        ivt = sum(int(value) for name, value in record.items() if name.startswith("ivt."))
        for name, index in columns.items():
            expected = ivt if name == "ivt" else int(record[name])
            assert expected == number(row["cells"][index]), (name, record)
        assert {cur: record[f"revenue.{cur}"] for cur in currencies} == {
            cur: row["cells"][index] for cur, index in currencies.items()
        }, record
    assert [name for name in records[0] if name.startswith("revenue.")] == [
        f"revenue.{cur}" for cur in currencies
    ]


async def api_csv(stack: Stack, program_id: str, params: dict[str, str]) -> bytes:
    """The API's own CSV for the same parameters."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            stack.url(f"/v1/reports/{program_id}"),
            params={**params, "format": "csv"},
            headers={"Authorization": f"Bearer {stack.key}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.read()


async def assert_clean(browser: Browser, stack: Stack) -> None:
    """Everything from the service itself, the key in a header only and in no storage but the
    tab's sessionStorage, no CSP violation, no console error."""
    requests = network_requests(browser)
    urls = [request["url"] for request in requests]
    assert urls
    for url in urls:
        assert fetched_from(url) in (stack.base_url, "data:"), url
        assert stack.key not in url
    api_calls = [request for request in requests if "/v1/" in request["url"]]
    assert api_calls
    for request in api_calls:
        assert request["headers"].get("Authorization") == f"Bearer {stack.key}", request["url"]
    resources = await browser.script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert resources
    assert all(url.startswith(stack.url("/")) for url in resources), resources

    assert await browser.script("return Object.keys(sessionStorage)") == ["reports.key"]
    assert await browser.script("return localStorage.length") == 0
    assert await browser.script("return document.cookie") == ""
    assert await browser.script("return window.cspViolations") == []
    assert console_errors(browser) == []


@pytest.mark.parametrize("stack", [{"REPORTS_RATE_LIMIT": "3"}], ids=["limit-3"], indirect=True)
async def test_dashboard_says_plainly_what_went_wrong(chrome: Dashboard, stack: Stack) -> None:
    await chrome.get(stack.url("/"))
    await chrome.paste_key(UNKNOWN_KEY)
    assert "Key not accepted" in await wait_for_text(chrome, "error", "Key not accepted")
    assert await chrome.script("return sessionStorage.length") == 0  # a refused key is dropped
    assert await chrome.script("return document.getElementById('key-form').hidden") is False

    # The real key: its programs (request 1), the first one's report (2).
    await chrome.paste_key(stack.key)
    page = await wait_for_report(chrome, "Blog banner", "by day")

    # 40 days by hour: stopped in the page, no request sent.
    network_requests(chrome)  # forget those so far
    today = date.fromisoformat(page["to"])
    await chrome.press("input[name=granularity][value=hour]")
    await chrome.set_date("from", today - timedelta(days=39))
    refusal = await wait_for_text(chrome, "range-error", "at most 31 days")
    assert "40" in refusal
    assert await chrome.script("return document.getElementById('show').disabled") is True
    await chrome.press("#show")
    await asyncio.sleep(0.3)
    assert network_requests(chrome) == []

    # Back to days: request 3 answers, request 4 is past the limit of 3 an hour.
    await chrome.press("input[name=granularity][value=day]")
    answered = await chrome.script(API_ANSWERS)
    await chrome.press("#show")
    await chrome.wait_for(lambda driver: driver.execute_script(API_ANSWERS) > answered)
    await chrome.press("#show")
    message = await wait_for_text(chrome, "error", "Too many requests")
    assert re.search(r"Try again in \d+ (seconds|minutes) \(at ", message), message

    errors = console_errors(chrome)  # Chromium's own lines for the 401 and the 429, only
    assert len(errors) == 2, errors
    assert "401" in errors[0]
    assert "429" in errors[1]
    assert await chrome.script("return window.cspViolations") == []
