"""The tracking routes on the tracker of another commit against this checkout's, and the bare
aiohttp server given the very same URLs, interleaved: what a change to a route costs per request,
and each route's ratio to bare aiohttp for its own URL (aiohttp's work for a longer URL is then on
both sides).

    .venv/bin/python -m bench.route_versus REV [--rounds N] [--seconds S] [--routes NAME]...

As bench.versus, with `hey` at c=100 as in bench.run's main table: `tracker/` of REV is taken
with `git archive` and run beside this checkout's, both shipping to the canned Kinesis endpoint.
Each round runs every (server, route) once, S seconds each, in an order that is reversed every
other round (ABBA). Prints per server and route the medians of req/s and of the CPU per request
over the rounds (the tracker's shipping included), and the ratio of req/s to bare aiohttp.
"""

from __future__ import annotations

import argparse
import json
import time
from statistics import median
from typing import Any

from bench.demo_programs import DEMO_CLICK, DEMO_CLICK_WITH_ID, DEMO_CONVERSION, DEMO_PIXEL
from bench.hey import run_hey
from bench.metrics_probe import wait_zero
from bench.procstat import cpu_seconds
from bench.versus import BARE, MAX_ROUNDS, started_trackers
from tracker.devstack.processes import ManagedProcess

ROUTES = {
    "pixel": DEMO_PIXEL,
    "conversion": DEMO_CONVERSION,
    "click": DEMO_CLICK,
    "click with id": DEMO_CLICK_WITH_ID,
}
Figures = dict[tuple[str, str], list[tuple[float, float]]]  # (server, route) -> (req/s, CPU us)


def one_run(process: ManagedProcess, target: str, seconds: float) -> tuple[float, float]:
    """(req/s, CPU microseconds per request) of one hey run, the tracker's shipping included."""
    assert process.process is not None
    origin = f"http://127.0.0.1:{process.port}"
    before = cpu_seconds(process.process.pid)
    result = run_hey(origin + target, 100, seconds=seconds)
    if process.name != "baseline-bare":
        wait_zero(f"{origin}/metrics", "tracker_ship_buffer_depth", 60)
    time.sleep(0.5)
    spent = cpu_seconds(process.process.pid) - before
    return result.requests_per_second, 1e6 * spent / max(1, sum(result.responses.values()))


def _rounds(
    servers: dict[str, ManagedProcess], routes: list[str], rounds: int, seconds: float
) -> Figures:
    runs = [(server, route) for route in routes for server in servers]
    figures: Figures = {run: [] for run in runs}
    for number in range(rounds):
        for server, route in runs if number % 2 == 0 else reversed(runs):
            figures[server, route].append(one_run(servers[server], ROUTES[route], seconds))
    return figures


def compare(rev: str, routes: list[str], rounds: int, seconds: float) -> dict[str, Any]:
    with started_trackers(rev) as (commit, servers):
        figures = _rounds(servers, routes, rounds, seconds)
    return {"other_commit": commit, "rounds": rounds, "seconds_per_run": seconds, **_table(figures)}


def _table(figures: Figures) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for (server, route), runs in figures.items():
        rps = median(run[0] for run in runs)
        bare = median(run[0] for run in figures[BARE, route])
        table.setdefault(server, {})[route] = {
            "rps": round(rps),
            "cpu_us_per_request": round(median(run[1] for run in runs), 1),
            "ratio_to_bare": round(rps / bare, 3),
            "runs": [[round(run[0]), round(run[1], 1)] for run in runs],
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the other commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=6, help=f"at most {MAX_ROUNDS}")
    parser.add_argument("--seconds", type=int, default=4, help="per run, whole seconds")
    parser.add_argument("--routes", action="append", choices=list(ROUTES), help="default: all")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    result = compare(args.rev, args.routes or list(ROUTES), rounds, max(1, args.seconds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
