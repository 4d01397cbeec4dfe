"""Watching `tracker serve` workers from a test: their pids (read from /proc) and the request
counter of one scrape of /metrics, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.orphans import children

# What a multiprocessing "spawn" child runs; the resource tracker, the other child, does not.
SPAWNED_WORKER = b"spawn_main"


def worker_pids(supervisor: int) -> set[int]:
    """The pids of the supervisor's worker processes."""
    return {pid for pid in children(supervisor) if SPAWNED_WORKER in _command_line(pid)}


def _command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


async def scrape(base_url: str) -> str:
    """One scrape on a connection of its own (SO_REUSEPORT may hand it to either worker)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


def requests_total(text: str, route: str) -> float:
    """tracker_requests_total of one route, summed over its outcomes."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tracker_requests"
        for sample in family.samples
        if sample.name == "tracker_requests_total" and sample.labels["route"] == route
    )


def series(text: str) -> set[tuple[str, tuple[str, ...]]]:
    """Each sample's name and label names: what a dashboard or an alert refers to."""
    return {
        (sample.name, tuple(sorted(sample.labels)))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class PixelCounter:
    """tracker_requests_total{route="pixel"} over successive scrapes, which must never go down."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self.seen: list[float] = []

    async def scrape(self) -> float:
        value = requests_total(await scrape(self._base_url), "pixel")
        if self.seen:
            assert value >= self.seen[-1], f"the counter went down: {self.seen[-1]} -> {value}"
        self.seen.append(value)
        return value

    async def wait_for(self, expected: float, timeout: float = 15.0) -> None:
        """Scrape until one shows `expected` (snapshots are written every second); never more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (value := await self.scrape()) != expected:
            assert value < expected, f"counted {value} of {expected} requests sent"
            if loop.time() > deadline:
                raise AssertionError(f"after {timeout}s the scrapes show {value} of {expected}")
            await asyncio.sleep(0.05)
