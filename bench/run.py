"""`make bench`: the tracker against a bare aiohttp server with `hey`, end to end into DynamoDB,
memory with 100,000 cached programs, durability (the pixel in each DURABILITY mode, and how
fast an on-disk event log drains), privacy (the pixel with consent signals, and the privacy
step's own cost per request), integrity (the pixel with a browser's and a crawler's user
agent, signed clicks with and without the duplicate check, and each check's own cost per
request), hostile requests (the tracker's CPU per request for each shape a client can send to
make it work hard, against a typical pixel), capacity and the reporting rollups (what they add
to the events consumer per event, a 31-day report's latency, how soon an event shows in a
report; also written to bench/results/rollups.json), conversion attribution (its DynamoDB
units, dollars and CPU per conversion and per click; also written to
bench/results/attribution.json) and the event lake (one lake worker's CPU per event, bytes per
event in its data files, its memory through a backlog, how soon an event is queryable; also
written to bench/results/lake.json). Writes bench/results/latest.{json,md,png}.

    .venv/bin/python -m bench.run [--quick]
        [--only durability|privacy|integrity|hostile|capacity|rollups|attribution|lake]
        [--cases TEXT]...

With --only PART only that part runs; the other parts of bench/results/latest.json are kept as
they were and the reports are written again from the merged result. With --cases, only the
main table's one-worker cases whose name holds one of the TEXTs run, and are printed (nothing
is written): to try a case, or compare a few, in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.attribution_cost import FULL as ATTRIBUTION_FULL
from bench.attribution_cost import QUICK as ATTRIBUTION_QUICK
from bench.attribution_cost import measure as measure_attribution_cost
from bench.capacity import measure_capacity
from bench.cases import Case, Timing
from bench.demo_programs import DEMO_CLICK, DEMO_CLICK_WITH_ID, DEMO_CONVERSION, DEMO_PIXEL
from bench.durability import measure_modes
from bench.e2e import run_e2e
from bench.hey import run_hey
from bench.hostile_cost import run as run_hostile
from bench.integrity_cost import measure as measure_integrity_checks
from bench.integrity_cost import measure_redis as measure_redis_check
from bench.integrity_http import groups, integrity_row, observer
from bench.lake_cost import FULL as LAKE_FULL
from bench.lake_cost import QUICK as LAKE_QUICK
from bench.lake_cost import measure as measure_lake
from bench.memory import measure_memory
from bench.nginx import nginx_empty_gif
from bench.privacy_cost import measure as measure_privacy_step
from bench.privacy_http import PRIVACY_SETTINGS, counter_reader, privacy_cases
from bench.replay import measure_replay
from bench.report import write_reports
from bench.report_latency import FULL as LATENCY_FULL
from bench.report_latency import QUICK as LATENCY_QUICK
from bench.report_latency import measure as measure_report_latency
from bench.rollup_cost import FULL as ROLLUP_FULL
from bench.rollup_cost import QUICK as ROLLUP_QUICK
from bench.rollup_cost import measure as measure_rollup_cost
from bench.rollup_freshness import measure as measure_freshness
from bench.stack import BenchStack, canned_kinesis, demo_stack, pid_of
from bench.tracker_cases import PRE_SERIALIZED, CaseSet, run_cases
from bench.wrk import ensure_wrk
from tracker.devstack.processes import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
MIB = 2**20
FRESHNESS_TRIES, FRESHNESS_TRIES_QUICK = 10, 3  # events put, one after the other

CASES_ONE_WORKER = [
    Case("pixel, cached valid", DEMO_PIXEL, 100, 1),
    Case("pixel, cached valid", DEMO_PIXEL, 100, 1, baseline=PRE_SERIALIZED),
    Case("pixel, cached valid", DEMO_PIXEL, 50, 1),
    Case("pixel, cached valid", DEMO_PIXEL, 200, 1),
    Case("pixel, unknown program", "/v1/pixel?program=no-such-program", 100, 1),
    Case("conversion, cached valid, every parameter", DEMO_CONVERSION, 100, 1),
    Case("click, cached valid", DEMO_CLICK, 100, 1, expected_status=302),
    Case("click, cached valid, with click id", DEMO_CLICK_WITH_ID, 100, 1, expected_status=302),
]
CASES_TWO_WORKERS = [Case("pixel, cached valid", DEMO_PIXEL, 100, 2)]
# The cases above ship to a canned endpoint (the tracker's own cost); these ship to kinesalite,
# whose per-record work shares the two cores with the tracker and hey.
CASES_KINESALITE = [Case("pixel, cached valid, to kinesalite", DEMO_PIXEL, 100, 1)]
CASES_AGGREGATED = [Case("pixel, cached valid, to kinesalite, aggregated", DEMO_PIXEL, 100, 1)]


@dataclass(frozen=True, slots=True)
class Plan:
    """How much each part of a run does (the command line's choices)."""

    quick: bool
    timing: Timing  # per HTTP case: seconds per run, rounds
    e2e_requests: int
    replay_mib: int  # the on-disk log drained into the canned endpoint
    kinesalite_mib: int  # the one drained into kinesalite
    hostile: Timing  # per hostile request shape: whole seconds per run, rounds

    @property
    def micro_runs(self) -> int:
        """Runs of the in-process parts: three, to show how steady they are; one when quick."""
        return 1 if self.quick else 3


def main() -> None:
    args = _arguments().parse_args()
    plan = _plan(args)
    if args.cases:
        print(json.dumps(_chosen_cases(args.cases, plan.timing), indent=2))
        return
    if args.only in (None, "integrity", "hostile"):
        ensure_wrk()  # now, not after the other parts have run
    if args.only is not None:
        report = _previous_report()
        report[args.only] = PARTS[args.only](plan)
        write_reports(report, RESULTS)
        print(json.dumps(report[args.only], indent=2))
        return
    report = {
        **_stamp(),
        "seconds_per_run": plan.timing.seconds,
        "rounds": plan.timing.rounds,
        **_tracker_parts(plan),
    }
    for name, part in PARTS.items():
        report[name] = part(plan)
    write_reports(report, RESULTS)
    print(json.dumps(report, indent=2))


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the harness")
    parser.add_argument("--e2e-requests", type=int, default=200_000)
    parser.add_argument(
        "--only",
        choices=list(PARTS),
        help="run only this part, keep the rest of latest.json",
    )
    parser.add_argument(
        "--cases",
        action="append",
        metavar="TEXT",
        help="run only the one-worker cases whose name holds TEXT (repeatable); print them",
    )
    parser.add_argument(
        "--replay-mib",
        type=int,
        help="size of the on-disk log drained into the canned endpoint (default 1024, quick 16)",
    )
    parser.add_argument(
        "--replay-kinesalite-mib",
        type=int,
        help="size of the on-disk log drained into kinesalite (default 1024, quick 8)",
    )
    return parser


def _plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    return Plan(
        quick=quick,
        timing=Timing(seconds=2.0, rounds=1) if quick else Timing(seconds=5.0, rounds=4),
        e2e_requests=20_000 if quick else args.e2e_requests,
        replay_mib=args.replay_mib or (16 if quick else 1024),
        kinesalite_mib=args.replay_kinesalite_mib or (8 if quick else 1024),
        # As in docs/benchmarks.md's table: about five minutes; quick, about one.
        hostile=Timing(seconds=1, rounds=1) if quick else Timing(seconds=3, rounds=2),
    )


def _tracker_parts(plan: Plan) -> dict[str, Any]:
    """The main table's cases, the ceiling, memory, and end to end (on a stack of its own)."""
    part: dict[str, Any] = {}
    with demo_stack() as stack:
        part["http"], part["shipping_plain"], part["shipping_aggregated"] = _all_cases(
            stack, plan.timing
        )
        part["ceiling"] = _ceiling(plan.timing.seconds)
        part["memory"] = measure_memory(stack, 100_000)
    with demo_stack() as stack:
        part["e2e"] = run_e2e(stack, plan.e2e_requests, 100, {})
    return part


def _all_cases(
    stack: BenchStack, timing: Timing
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, float]]:
    with canned_kinesis(stack) as to_canned:
        plain, _ = run_cases(stack, CaseSet(CASES_ONE_WORKER, 1, to_canned), timing)
        two, _ = run_cases(stack, CaseSet(CASES_TWO_WORKERS, 2, to_canned), timing)
    emulated, plain_cost = run_cases(stack, CaseSet(CASES_KINESALITE), timing)
    aggregated, aggregated_cost = run_cases(
        stack, CaseSet(CASES_AGGREGATED, 1, {"SHIP_AGGREGATE": "true"}), timing
    )
    return [*plain, *two, *emulated, *aggregated], plain_cost, aggregated_cost


def _chosen_cases(texts: list[str], timing: Timing) -> list[dict[str, Any]]:
    """The one-worker cases named by any of `texts`, shipping to the canned endpoint."""
    cases = [case for case in CASES_ONE_WORKER if any(text in case.name for text in texts)]
    if not cases:
        raise SystemExit(f"no case of {[case.name for case in CASES_ONE_WORKER]} holds {texts}")
    with demo_stack() as stack, canned_kinesis(stack) as to_canned:
        summaries, _ = run_cases(stack, CaseSet(cases, 1, to_canned), timing)
    return summaries


def _durability(plan: Plan) -> dict[str, Any]:
    """The pixel in each DURABILITY mode against the canned endpoint, then a log of replay_mib
    drained into the canned endpoint and one of kinesalite_mib into kinesalite."""
    part: dict[str, Any] = _stamp()
    with demo_stack() as stack:
        with canned_kinesis(stack) as to_canned:
            part.update(measure_modes(stack, to_canned, plan.timing.seconds, plan.timing.rounds))
            replays = [measure_replay(stack, plan.replay_mib * MIB, "canned endpoint", to_canned)]
        replays.append(
            measure_replay(stack, plan.kinesalite_mib * MIB, "kinesalite", {}, stack.kinesis)
        )
    part["replay"] = replays
    return part


def _privacy(plan: Plan) -> dict[str, Any]:
    """The privacy step alone, in process, then the pixel with and without consent signals
    against the bare server, one tracker shipping to the canned endpoint; and the tracker's
    privacy counters, which show what its requests were decided."""
    part: dict[str, Any] = {
        **_stamp(),
        **_timing(plan.timing),
        # First, while none of the bench's servers competes for the cores.
        "micro": measure_privacy_step(plan.quick, runs=plan.micro_runs),
    }
    counters: dict[str, float] = {}
    with demo_stack() as stack, canned_kinesis(stack) as to_canned:
        settings = {**to_canned, **PRIVACY_SETTINGS}
        cases = CaseSet(privacy_cases(), 1, settings, after=counter_reader(counters))
        part["http"], _ = run_cases(stack, cases, plan.timing)
    part["counters"] = counters
    return part


def _integrity(plan: Plan) -> dict[str, Any]:
    """The checks alone, in process, then the HTTP cases of bench/integrity_http.py against the
    bare server, one tracker per group of settings shipping to the canned endpoint; each case
    with what the tracker counted during it (events by ivt, duplicate checks) and the CPU Redis
    spent."""
    part: dict[str, Any] = {
        **_stamp(),
        **_timing(plan.timing),
        # First, while none of the bench's servers competes for the cores.
        "micro": measure_integrity_checks(plan.quick, runs=plan.micro_runs),
    }
    with demo_stack() as stack:
        assert stack.redis is not None
        # The Redis client's CPU per duplicate check, with the stack's servers idle.
        part["micro"]["paths"] += measure_redis_check(
            stack.env["REDIS_URL"], plan.quick, runs=plan.micro_runs
        )
        part["http"] = _integrity_cases(stack, observer(pid_of(stack.redis)), plan.timing)
    return part


def _integrity_cases(
    stack: BenchStack, observe: Callable[[str], dict[str, float]], timing: Timing
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with canned_kinesis(stack) as to_canned:
        for group in groups():
            cases = CaseSet(group.cases, 1, {**to_canned, **group.extra}, observe=observe)
            summaries, _ = run_cases(stack, cases, timing)
            rows += [integrity_row(row, group.settings) for row in summaries]
    return rows


def _hostile(plan: Plan) -> dict[str, Any]:
    """Each hostile request shape against a typical pixel (bench/hostile_cost.py): one tracker
    with every check on, on a stack of its own, every run bounded by its seconds."""
    hostile = run_hostile(int(plan.hostile.seconds), plan.hostile.rounds)
    return {**_stamp(), **hostile.as_json()}


def _capacity(plan: Plan) -> dict[str, Any]:
    """The figures of docs/capacity.md (bench/capacity.py), a few minutes."""
    return {**_stamp(), **measure_capacity(plan.quick)}


def _rollups(plan: Plan) -> dict[str, Any]:
    """The reporting rollups against the issue's bars (docs/benchmarks.md, Reporting): their
    CPU and DynamoDB units per event in the events consumer (bench/rollup_cost.py, in process,
    first, while nothing else runs), a 31-day hourly report's latency (bench/report_latency.py)
    and how soon an event shows in a report (bench/rollup_freshness.py). Also written to
    bench/results/rollups.json, a few minutes in all."""
    part: dict[str, Any] = {
        **_stamp(),
        "cost": measure_rollup_cost(ROLLUP_QUICK if plan.quick else ROLLUP_FULL),
        "latency": measure_report_latency(LATENCY_QUICK if plan.quick else LATENCY_FULL),
        "freshness": measure_freshness(FRESHNESS_TRIES_QUICK if plan.quick else FRESHNESS_TRIES),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rollups.json").write_text(json.dumps(part, indent=2) + "\n")
    return part


def _attribution(plan: Plan) -> dict[str, Any]:
    """Conversion attribution in the events consumer (bench/attribution_cost.py, in process
    against moto): DynamoDB calls, units and dollars per conversion and per click, the common
    path against the issue's bar, the parked path, CPU with and without. Also written to
    bench/results/attribution.json, about a minute."""
    cost = measure_attribution_cost(ATTRIBUTION_QUICK if plan.quick else ATTRIBUTION_FULL)
    part: dict[str, Any] = {**_stamp(), **cost}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "attribution.json").write_text(json.dumps(part, indent=2) + "\n")
    return part


def _lake(plan: Plan) -> dict[str, Any]:
    """The event lake against the issue's bars (bench/lake_cost.py): one lake worker's CPU per
    event, records decoded and committed into a local Iceberg table in process; bytes per event
    of its data files; its peak RSS through two backlogs (fresh processes); how soon an event is
    queryable (real processes). Also written to bench/results/lake.json, under three minutes."""
    part: dict[str, Any] = {**_stamp(), **measure_lake(LAKE_QUICK if plan.quick else LAKE_FULL)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lake.json").write_text(json.dumps(part, indent=2) + "\n")
    return part


# The parts after the tracker's own, in the report's order; each can run alone (--only).
PARTS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "durability": _durability,
    "privacy": _privacy,
    "integrity": _integrity,
    "hostile": _hostile,
    "capacity": _capacity,
    "rollups": _rollups,
    "attribution": _attribution,
    "lake": _lake,
}


def _previous_report() -> dict[str, Any]:
    """The last run's report, to which a partial run adds its part."""
    path = RESULTS / "latest.json"
    if path.exists():
        previous: dict[str, Any] = json.loads(path.read_text())
        return previous
    return _stamp()


def _stamp() -> dict[str, Any]:
    """When a report or a part of it started, and on what machine."""
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": _machine()}


def _timing(timing: Timing) -> dict[str, Any]:
    return {"seconds_per_run": timing.seconds, "rounds": timing.rounds}


def _ceiling(seconds: float) -> dict[str, Any] | None:
    """nginx empty_gif at c=100 with one worker, if nginx is installed."""
    with nginx_empty_gif(workers=1) as url:
        if url is None:
            return None
        result = run_hey(url + "/v1/pixel", 100, seconds=seconds)
        return {
            "server": "nginx empty_gif, 1 worker",
            "concurrency": 100,
            "rps": round(result.requests_per_second),
            "p99_ms": round(result.p99_ms, 2),
            "errors": result.non_2xx(),
        }


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


if __name__ == "__main__":
    main()
