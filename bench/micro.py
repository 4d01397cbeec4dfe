"""The harness of the in-process benchmarks (bench/privacy_cost.py, bench/integrity_cost.py): a
path is one loop of calls over inputs built before the clock starts, timed as a whole.

A path's figure is the median over its repetitions of the loop's time divided by its calls: per
call, including the Python call itself (as the handler pays it) and the loop (each module's no-op
row shows what those two cost), with the garbage collector on, as in the tracker. Repetitions are
bounded in count and in time. With several runs, every path runs once per run, in order, and
reports the median of the runs' figures and each of them, to show how steady they were.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any, TypeVar

REPETITIONS, QUICK_REPETITIONS = 15, 5
QUICK_SCALE = 4  # --quick: a quarter of the calls per repetition
MAX_SECONDS_PER_PATH = 10.0  # after at least MIN_REPETITIONS, no more repetitions past this
MIN_REPETITIONS = 3
MAX_RUNS = 20

Item = TypeVar("Item")


@dataclass(frozen=True, slots=True)
class Path:
    name: str
    what: str  # one line for the report
    calls: int  # per repetition
    repetition: Callable[[], float]  # runs one repetition: microseconds per call


def scaled(calls: int, quick: bool) -> int:
    return calls // QUICK_SCALE if quick else calls


def repetition_count(quick: bool) -> int:
    return QUICK_REPETITIONS if quick else REPETITIONS


def per_call(seconds: float, calls: int) -> float:
    """Microseconds per call."""
    return 1e6 * seconds / calls


def loop_seconds(call: Callable[[Item], object], inputs: Sequence[Item]) -> float:
    """Seconds for one call per input, each with the input as its one argument."""
    started = time.perf_counter()
    for item in inputs:
        call(item)
    return time.perf_counter() - started


def time_path(path: Path, repetitions: int) -> list[float]:
    """Microseconds per call, one figure per repetition, bounded in count and time."""
    figures: list[float] = []
    deadline = time.monotonic() + MAX_SECONDS_PER_PATH
    for number in range(repetitions):
        if number >= MIN_REPETITIONS and time.monotonic() > deadline:
            break
        figures.append(path.repetition())
    return figures


def rows(chosen: Sequence[Path], runs: int, repetitions: int) -> list[dict[str, Any]]:
    """Every path `runs` times; per path the median of the runs' medians and each of them, as
    the report's rows."""
    per_run: dict[str, list[float]] = {path.name: [] for path in chosen}
    for _ in range(runs):
        for path in chosen:
            per_run[path.name].append(median(time_path(path, repetitions)))
    return [
        {
            "path": path.name,
            "what": path.what,
            "calls_per_repetition": path.calls,
            "us_per_call": round(median(per_run[path.name]), 3),
            "us_per_call_runs": [round(f, 3) for f in per_run[path.name]],
        }
        for path in chosen
    ]


def arguments(description: str | None) -> argparse.ArgumentParser:
    """A command line with the options every in-process benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--runs", type=int, default=1, help="run every path this many times")
    return parser


def run_count(args: argparse.Namespace) -> int:
    """--runs, bounded: 1 to MAX_RUNS."""
    return max(1, min(int(args.runs), MAX_RUNS))


def print_rows(result_rows: Sequence[dict[str, Any]]) -> None:
    width = max(len(row["path"]) for row in result_rows)
    for row in result_rows:
        each_run = ", ".join(f"{f:.3f}" for f in row["us_per_call_runs"])
        print(f"{row['path']:<{width}} {row['us_per_call']:9.3f} us   runs: {each_run}")
