"""The pixel on the tracker of another commit against this checkout's, and the bare aiohttp
server, interleaved: what a change costs per request when two bench runs cannot tell (a single
run's ratio moves by ten points on a noisy machine, and each tracker process by a few us).

    .venv/bin/python -m bench.versus REV [--rounds N] [--seconds S]

`tracker/` of REV is taken with `git archive` into a temporary directory and run from there
(`python -P`, so that this checkout, the working directory, does not come first on the path),
against the same stack and canned Kinesis endpoint as this checkout's tracker. Each round runs
the three servers once, for S seconds each with wrk at c=100 and a browser's user agent, in one
of the six orders (round N takes order N mod 6), so that no server always follows the same one.
Prints the medians of req/s and the CPU per request of each server over its own runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from bench.integrity_http import BROWSER
from bench.metrics_probe import wait_zero
from bench.procstat import cpu_seconds
from bench.stack import BenchStack, canned_kinesis, demo_stack
from bench.wrk import ensure_wrk, run_wrk
from tracker.devstack.processes import REPO_ROOT, ManagedProcess, free_port

PIXEL = "/v1/pixel?program=demo-shoes"
THIS, OTHER, BARE = "this checkout", "other", "bare aiohttp"
MAX_ROUNDS = 24


def export_tracker(rev: str, into: Path) -> str:
    """`tracker/` of `rev` under `into`; the commit's full hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = into / "tracker.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", commit, "tracker"], cwd=REPO_ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return commit


@dataclass
class Side:
    """One server's runs: req/s of each, and requests and CPU seconds added up."""

    rps: list[float] = field(default_factory=list)
    requests: int = 0
    cpu: float = 0.0


def trackers(
    stack: BenchStack, other_tree: Path, canned: dict[str, str]
) -> dict[str, ManagedProcess]:
    """The three servers, not started: this checkout's tracker, the other commit's, bare."""
    other_port, bare_port = free_port(), free_port()
    settings = {"TRACKER_WORKERS": "1", **canned}
    other_env = {
        **stack.env,
        **settings,
        "TRACKER_PORT": str(other_port),
        "SPILL_DIR": str(stack.spill_dir()),
        "PYTHONPATH": str(other_tree),
    }
    return {
        THIS: stack.tracker(settings),
        OTHER: ManagedProcess(
            "tracker-other", [sys.executable, "-P", "-m", "tracker", "serve"], other_port, other_env
        ),
        BARE: stack.process("baseline-bare", ["bench.baseline_server", str(bare_port)], bare_port),
    }


def one_run(process: ManagedProcess, tracker: bool, seconds: float) -> tuple[float, int, float]:
    """(req/s, requests, CPU seconds) of one wrk run, the tracker's shipping included."""
    assert process.process is not None
    before = cpu_seconds(process.process.pid)
    url = f"http://127.0.0.1:{process.port}" + (PIXEL if tracker else "/v1/pixel")
    result = run_wrk(url, 100, seconds=seconds, headers=(BROWSER,))
    if tracker:
        wait_zero(f"http://127.0.0.1:{process.port}/metrics", "tracker_ship_buffer_depth", 60)
    time.sleep(0.5)
    spent = cpu_seconds(process.process.pid) - before
    return result.requests_per_second, sum(result.responses.values()), spent


@contextmanager
def started_trackers(rev: str) -> Iterator[tuple[str, dict[str, ManagedProcess]]]:
    """(the other commit, the servers by name: that commit's tracker, this one's, the bare
    server), started on the demo stack with a canned Kinesis, stopped on leaving."""
    with tempfile.TemporaryDirectory(prefix="adtracker-versus-") as tree, demo_stack() as stack:
        commit = export_tracker(rev, Path(tree))
        with canned_kinesis(stack) as canned:
            servers = trackers(stack, Path(tree), canned)
            for server in servers.values():
                server.start()
            try:
                time.sleep(1.0)  # bound and subscribed
                yield commit, servers
            finally:
                for server in servers.values():
                    server.stop()


def compare(rev: str, rounds: int, seconds: float) -> dict[str, Any]:
    with started_trackers(rev) as (commit, servers):
        figures = _rounds(servers, rounds, seconds)
    bare_rps = median(figures[BARE].rps)
    return {
        "other_commit": commit,
        "rounds": rounds,
        "seconds_per_run": seconds,
        "servers": {
            name: {
                "rps": round(median(side.rps)),
                "ratio_to_bare": round(median(side.rps) / bare_rps, 3),
                "cpu_us_per_request": round(1e6 * side.cpu / side.requests, 1),
                "rps_runs": [round(r) for r in side.rps],
            }
            for name, side in figures.items()
        },
    }


def _rounds(servers: dict[str, ManagedProcess], rounds: int, seconds: float) -> dict[str, Side]:
    orders = list(itertools.permutations(servers))
    figures = {name: Side() for name in servers}
    for number in range(rounds):
        for name in orders[number % len(orders)]:
            rps, requests, cpu = one_run(servers[name], name != BARE, seconds)
            side = figures[name]
            side.rps.append(rps)
            side.requests += requests
            side.cpu += cpu
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rev", help="the other commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=6, help=f"at most {MAX_ROUNDS}")
    parser.add_argument("--seconds", type=int, default=5, help="per run, whole seconds")
    args = parser.parse_args()
    ensure_wrk()
    result = compare(args.rev, max(1, min(args.rounds, MAX_ROUNDS)), max(1, args.seconds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
