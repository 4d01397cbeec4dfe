"""Reading one value from a Prometheus endpoint (the tracker's or a consumer's)."""

from __future__ import annotations

import time
import urllib.request


def read_metric(url: str, name: str, labels: str = "") -> float:
    """The value of `name{labels}` (labels as written in the exposition, e.g. 'route="pixel"')."""
    return metric_value(scrape(url), name, labels)


def scrape(url: str) -> str:
    """The exposition text of a /metrics endpoint, to read several values from one scrape."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback URL)
        text: str = response.read().decode()
    return text


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The value of `name{labels}` in an exposition text, added up over the series that match."""
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name or (labels and series.startswith(name + "{") and labels in series):
            total += float(value)
    return total


def wait_metric(url: str, name: str, at_least: float, timeout: float, labels: str = "") -> float:
    deadline = time.monotonic() + timeout
    while (value := read_metric(url, name, labels)) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} reached {value}, not {at_least}, within {timeout}s")
        time.sleep(0.2)
    return value


def wait_zero(url: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while read_metric(url, name) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not fall to 0 within {timeout}s")
        time.sleep(0.1)
