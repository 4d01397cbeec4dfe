"""Running `hey` and reading its summary."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

HEY_TIMEOUT_MARGIN = 60


@dataclass(frozen=True)
class HeyResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    responses: dict[int, int]
    errors: int

    def non_2xx(self, expected: int = 200) -> int:
        return sum(n for status, n in self.responses.items() if status != expected) + self.errors


def run_hey(
    url: str,
    concurrency: int,
    *,
    seconds: float | None = None,
    requests: int | None = None,
    headers: Sequence[str] = (),
) -> HeyResult:
    """Load `url` for `seconds` (or `requests` in all) with `concurrency` workers, no redirects,
    sending `headers` ("Name: value") with every request."""
    if any(header.split(":", 1)[0].strip().lower() == "user-agent" for header in headers):
        # hey 0.1.4 replaces it with its own (rakyll/hey#157): the case would not be what it
        # says. bench/wrk.py sends it.
        raise ValueError("hey drops -H User-Agent: run this case through wrk")
    argv = ["hey", "-c", str(concurrency), "-disable-redirects"]
    for header in headers:
        argv += ["-H", header]
    if seconds is not None:
        argv += ["-z", f"{seconds}s"]
        budget = seconds + HEY_TIMEOUT_MARGIN
    else:
        argv += ["-n", str(requests)]
        budget = 600
    completed = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True, timeout=budget
    )
    return parse(completed.stdout)


def parse(text: str) -> HeyResult:
    rps = float(search(r"Requests/sec:\s+([\d.]+)", text))
    p50 = float(search(r"50%+ in ([\d.]+) secs", text)) * 1000
    p99 = float(search(r"99%+ in ([\d.]+) secs", text)) * 1000
    responses = {
        int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)
    }
    errors_block = text.split("Error distribution:", 1)
    errors = (
        sum(int(n) for n in re.findall(r"\[(\d+)\]", errors_block[1]))
        if len(errors_block) > 1
        else 0
    )
    return HeyResult(rps, p50, p99, responses, errors)


def search(pattern: str, text: str, tool: str = "hey") -> str:
    """The first group of `pattern` in a load generator's summary; ValueError, with the end of
    the summary, when it is not there."""
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"{tool} output lacks {pattern!r}:\n{text[-2000:]}")
    return match.group(1)
