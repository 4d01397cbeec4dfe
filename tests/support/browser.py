"""A real browser for tests: Debian's headless Chromium through chromedriver and selenium, and a
publisher site (pages served by a small aiohttp server on 127.0.0.1) for it to visit.

Selenium is synchronous and the site runs on the test's event loop: every browser call goes
through `asyncio.to_thread` (see `Browser`), or the browser would wait for a page that the
blocked loop can never serve.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from multidict import CIMultiDict
from selenium import webdriver
from selenium.webdriver.chrome.options import Options as ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.support.loopback import port_of, serve_on_loopback

PAGE_LOAD_TIMEOUT = 15.0  # seconds, for one navigation
SCRIPT_TIMEOUT = 5.0
WAIT_TIMEOUT = 15.0  # for a condition in the page

CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI, and no user namespaces in most containers
    "--disable-gpu",
    "--disable-dev-shm-usage",  # a container's /dev/shm is often 64 MB
    "--no-first-run",
    "--no-default-browser-check",
    # Everything is plain http on 127.0.0.1, the publisher and the tracker on different ports:
    # neither upgraded to https nor held back as a local-network request. (Loopback is exempt
    # from both today; these keep it so should a Chromium release change its mind.)
    "--disable-features=HttpsUpgrades,LocalNetworkAccessChecks",
    "--window-size=1280,800",
)


def browser_binaries() -> tuple[str, str]:
    """(chromium, chromedriver). Missing ones skip the test on a developer's machine and fail
    it under CI (CI set), so that CI never passes without having run it."""
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium and chromedriver:
        return chromium, chromedriver
    missing = " and ".join(
        name for name, path in (("chromium", chromium), ("chromedriver", chromedriver)) if not path
    )
    reason = f"{missing} not installed: make browser (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason}; CI is set, so a missing browser is a failure")
    pytest.skip(reason)


def desktop_user_agent(user_agent: str) -> str:
    """The user agent the same Chromium sends with a window. Headless Chromium says
    `HeadlessChrome/…`, which crawler lists rightly name a bot."""
    return user_agent.replace("HeadlessChrome/", "Chrome/")


def start_chrome(chromium: str, chromedriver: str, profile: Path) -> WebDriver:
    """Headless Chromium with a fresh profile, driven by the given chromedriver: selenium is
    given both paths, so it never looks for (or downloads) a driver."""
    options = ChromeOptions()
    options.binary_location = chromium
    for arg in (*CHROME_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    service = ChromeService(executable_path=chromedriver)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        headless = cast(str, driver.execute_script("return navigator.userAgent"))
        driver.execute_cdp_cmd(
            "Network.setUserAgentOverride", {"userAgent": desktop_user_agent(headless)}
        )
    except BaseException:
        driver.quit()
        raise
    return driver


@dataclass
class Browser:
    """Async front of a selenium driver: each call runs in a thread."""

    driver: WebDriver

    async def get(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def script(self, source: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, source, *args)

    async def click(self, element_id: str) -> None:
        def click() -> None:
            self.driver.find_element(By.ID, element_id).click()

        await asyncio.to_thread(click)

    async def wait_for(
        self, condition: Callable[[WebDriver], object], timeout: float = WAIT_TIMEOUT
    ) -> None:
        """Until `condition(driver)` is truthy; a TimeoutException after `timeout` seconds."""
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05)
        await asyncio.to_thread(wait.until, condition)

    @property
    def current_url(self) -> str:
        return self.driver.current_url


@dataclass
class SeenRequest:
    path_qs: str
    headers: CIMultiDict[str]


@dataclass
class PublisherSite:
    """Pages by path, served on http://127.0.0.1:{port}; every request it got, headers kept."""

    port: int = 0
    pages: dict[str, str] = field(default_factory=dict)
    requests: list[SeenRequest] = field(default_factory=list)

    def url(self, path_qs: str) -> str:
        return f"http://127.0.0.1:{self.port}{path_qs}"

    def add_page(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url(path)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [seen for seen in self.requests if seen.path_qs.split("?")[0] == path]

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(SeenRequest(request.path_qs, CIMultiDict(request.headers)))
        html = self.pages.get(request.path)
        if html is None:
            return web.Response(status=404, text="not here")
        return web.Response(
            text=html, content_type="text/html", headers={"Cache-Control": "no-store"}
        )


@asynccontextmanager
async def publisher_site() -> AsyncIterator[PublisherSite]:
    site = PublisherSite()
    app = web.Application()
    app.router.add_get("/{path:.*}", site.handle)
    runner = await serve_on_loopback(app)
    try:
        site.port = port_of(runner)
        yield site
    finally:
        await runner.cleanup()
