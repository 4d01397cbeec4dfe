"""Running `wrk` and reading its summary, for cases whose requests carry their own User-Agent.

hey 0.1.4 (Debian's, the only release) drops a `-H "User-Agent: ..."` and always sends
`hey/0.0.1` (rakyll/hey#157, fixed on its master only), so a case that needs a browser's or a
crawler's user agent cannot run through it. wrk sends the headers it is given and no user agent
of its own. Its summary has no count per status: it tells only how many responses were not 2xx
or 3xx, so every other response is counted under the status the caller expects.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence

from bench.hey import HEY_TIMEOUT_MARGIN, HeyResult, search

THREADS = 2  # the machine's cores; hey, too, runs on every core
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def ensure_wrk() -> None:
    """wrk on the PATH, installed from Debian's package when missing (as `make bench` does for
    hey, as root); SystemExit with the command to run otherwise. Called before a run starts, so
    that a missing tool does not end a bench half way."""
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (Debian package)")
        installed = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            stdout=subprocess.DEVNULL,
            check=False,
            timeout=600,
        )
        if installed.returncode == 0 and shutil.which("wrk"):
            return
    raise SystemExit("wrk is missing: apt-get install wrk")


def run_wrk(
    url: str,
    concurrency: int,
    *,
    seconds: float,
    headers: Sequence[str] = (),
    status: int = 200,
) -> HeyResult:
    """Load `url` for `seconds` (whole seconds: wrk takes no fraction) over `concurrency`
    connections, sending `headers` ("Name: value"); 2xx and 3xx responses are counted as
    `status`."""
    duration = max(1, round(seconds))
    argv = ["wrk", "-t", str(min(THREADS, concurrency)), "-c", str(concurrency)]
    argv += ["-d", f"{duration}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    completed = subprocess.run(
        [*argv, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + HEY_TIMEOUT_MARGIN,
    )
    return parse(completed.stdout, status)


def parse(text: str, status: int = 200) -> HeyResult:
    rps = float(search(r"Requests/sec:\s+([\d.]+)", text, "wrk"))
    requests = int(search(r"(\d+) requests in ", text, "wrk"))
    not_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    bad_status = int(not_ok.group(1)) if not_ok else 0
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_errors = sum(int(n) for n in socket.groups()) if socket else 0
    responses = {status: requests - bad_status}
    if bad_status:
        responses[0] = bad_status  # some other status: wrk does not say which
    return HeyResult(
        rps, _latency_ms("50", text), _latency_ms("99", text), responses, socket_errors
    )


def _latency_ms(percent: str, text: str) -> float:
    """A percentile of wrk's latency distribution (printed as 850.00us, 4.63ms or 1.02s)."""
    match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk output lacks the {percent}% latency:\n{text[-2000:]}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]
