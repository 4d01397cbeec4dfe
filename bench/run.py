"""`make bench`: the tracker against a bare aiohttp server with `hey`, end to end into DynamoDB,
memory with 100,000 cached programs, durability (the pixel in each DURABILITY mode, and how
fast an on-disk event log drains), privacy (the pixel with consent signals, and the privacy
step's own cost per request) and integrity (the pixel with a browser's and a crawler's user
agent, signed clicks with and without the duplicate check, and each check's own cost per
request). Writes bench/results/latest.{json,md,png}.

    .venv/bin/python -m bench.run [--quick] [--only durability|privacy|integrity|capacity]

With --only PART only that part runs; the other parts of bench/results/latest.json are kept as
they were and the reports are written again from the merged result.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.capacity import measure_capacity
from bench.cases import Case, measure
from bench.durability import measure_modes, measure_replay
from bench.e2e import run_e2e
from bench.hey import run_hey
from bench.integrity_cost import measure as measure_integrity_checks
from bench.integrity_cost import measure_redis as measure_redis_check
from bench.integrity_http import REDIS_CPU, groups, observer
from bench.memory import measure_memory
from bench.metrics_probe import read_metric, wait_zero
from bench.nginx import nginx_empty_gif
from bench.privacy_cost import USER_ID, USER_ID_KEY_TEXT, VENDOR_ID, granted_string
from bench.privacy_cost import measure as measure_privacy_step
from bench.report import write_reports
from bench.stack import BenchStack, canned_kinesis
from bench.wrk import ensure_wrk
from tracker.devstack.processes import REPO_ROOT, ManagedProcess, free_port

RESULTS = REPO_ROOT / "bench" / "results"
DEMO = REPO_ROOT / "infra" / "local" / "programs.json"

PIXEL = "/v1/pixel?program=demo-shoes"
PRE_SERIALIZED = "pre-serialized"
CASES_ONE_WORKER = [
    Case("pixel, cached valid", PIXEL, 100, 1),
    Case("pixel, cached valid", PIXEL, 100, 1, baseline=PRE_SERIALIZED),
    Case("pixel, cached valid", PIXEL, 50, 1),
    Case("pixel, cached valid", PIXEL, 200, 1),
    Case("pixel, unknown program", "/v1/pixel?program=no-such-program", 100, 1),
    Case("click, cached valid", "/v1/click?program=demo-shoes", 100, 1, expected_status=302),
]
CASES_TWO_WORKERS = [Case("pixel, cached valid", PIXEL, 100, 2)]
# The cases above ship to a canned endpoint (the tracker's own cost); these ship to kinesalite,
# whose per-record work shares the two cores with the tracker and hey.
CASES_KINESALITE = [Case("pixel, cached valid, to kinesalite", PIXEL, 100, 1)]
CASES_AGGREGATED = [Case("pixel, cached valid, to kinesalite, aggregated", PIXEL, 100, 1)]
# The privacy part's tracker: a TCF vendor id and a USER_ID_KEY, so that consent can be granted
# and a uid hashed (both unset by default, when neither can happen).
PRIVACY_SETTINGS = {"TCF_VENDOR_ID": str(VENDOR_ID), "USER_ID_KEY": USER_ID_KEY_TEXT}
# (key in the report, metric, labels): what the tracker decided for the requests it served.
PRIVACY_COUNTERS = (
    (
        "consent_not_applicable",
        "tracker_consent_requests_total",
        'consent="CONSENT_NOT_APPLICABLE"',
    ),
    ("consent_granted", "tracker_consent_requests_total", 'consent="CONSENT_GRANTED"'),
    ("consent_denied", "tracker_consent_requests_total", 'consent="CONSENT_DENIED"'),
    ("opted_out", "tracker_opted_out_requests_total", ""),
    ("visitor_id_unavailable", "tracker_visitor_id_unavailable_total", ""),
    ("visitor_secret_failures", "tracker_visitor_secret_failures_total", ""),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the harness")
    parser.add_argument("--e2e-requests", type=int, default=200_000)
    parser.add_argument(
        "--only",
        choices=["durability", "privacy", "integrity", "capacity"],
        help="run only this part, keep the rest of latest.json",
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
    args = parser.parse_args()
    seconds, rounds = (2.0, 1) if args.quick else (5.0, 4)
    replay_mib = args.replay_mib or (16 if args.quick else 1024)
    kinesalite_mib = args.replay_kinesalite_mib or (8 if args.quick else 1024)
    if args.only in (None, "integrity"):
        ensure_wrk()  # now, not after the other parts have run
    if args.only == "durability":
        report = _previous_report()
        report["durability"] = _durability(seconds, rounds, replay_mib, kinesalite_mib)
        write_reports(report, RESULTS)
        print(json.dumps(report["durability"], indent=2))
        return
    if args.only == "privacy":
        report = _previous_report()
        report["privacy"] = _privacy(seconds, rounds, args.quick)
        write_reports(report, RESULTS)
        print(json.dumps(report["privacy"], indent=2))
        return
    if args.only == "integrity":
        report = _previous_report()
        report["integrity"] = _integrity(seconds, rounds, args.quick)
        write_reports(report, RESULTS)
        print(json.dumps(report["integrity"], indent=2))
        return
    if args.only == "capacity":
        report = _previous_report()
        report["capacity"] = _capacity(args.quick)
        write_reports(report, RESULTS)
        print(json.dumps(report["capacity"], indent=2))
        return
    report = {
        "started": _now(),
        "machine": _machine(),
        "seconds_per_run": seconds,
        "rounds": rounds,
    }
    with BenchStack() as stack:
        stack.command("consumers", "init")
        stack.command("tracker", "programs", "load", str(DEMO))
        report["http"], report["shipping_plain"], report["shipping_aggregated"] = _all_cases(
            stack, seconds, rounds
        )
        report["ceiling"] = _ceiling(seconds)
        report["memory"] = measure_memory(stack, 100_000)
    with BenchStack() as stack:
        stack.command("consumers", "init")
        stack.command("tracker", "programs", "load", str(DEMO))
        requests = 20_000 if args.quick else args.e2e_requests
        report["e2e"] = run_e2e(stack, requests, 100, {})
    report["durability"] = _durability(seconds, rounds, replay_mib, kinesalite_mib)
    report["privacy"] = _privacy(seconds, rounds, args.quick)
    report["integrity"] = _integrity(seconds, rounds, args.quick)
    report["capacity"] = _capacity(args.quick)
    write_reports(report, RESULTS)
    print(json.dumps(report, indent=2))


def _all_cases(
    stack: BenchStack, seconds: float, rounds: int
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, float]]:
    with canned_kinesis(stack) as to_canned:
        plain, _ = _http_cases(stack, CASES_ONE_WORKER, 1, seconds, rounds, to_canned)
        two, _ = _http_cases(stack, CASES_TWO_WORKERS, 2, seconds, rounds, to_canned)
    emulated, plain_cost = _http_cases(stack, CASES_KINESALITE, 1, seconds, rounds)
    aggregated, aggregated_cost = _http_cases(
        stack, CASES_AGGREGATED, 1, seconds, rounds, {"SHIP_AGGREGATE": "true"}
    )
    return [*plain, *two, *emulated, *aggregated], plain_cost, aggregated_cost


def _durability(
    seconds: float, rounds: int, replay_mib: int, kinesalite_mib: int
) -> dict[str, Any]:
    """The pixel in each DURABILITY mode against the canned endpoint, then a log of replay_mib
    drained into the canned endpoint and one of kinesalite_mib into kinesalite."""
    part: dict[str, Any] = {"started": _now(), "machine": _machine()}
    with BenchStack() as stack:
        stack.command("consumers", "init")
        stack.command("tracker", "programs", "load", str(DEMO))
        with canned_kinesis(stack) as to_canned:
            part.update(measure_modes(stack, to_canned, seconds, rounds))
            replays = [measure_replay(stack, replay_mib * 2**20, "canned endpoint", to_canned)]
        replays.append(
            measure_replay(stack, kinesalite_mib * 2**20, "kinesalite", {}, stack.kinesis)
        )
    part["replay"] = replays
    return part


def _privacy(seconds: float, rounds: int, quick: bool) -> dict[str, Any]:
    """The privacy step alone, in process (three runs, to show how steady it is), then the pixel
    with and without consent signals against the bare server, one tracker shipping to the canned
    endpoint; and the tracker's privacy counters, which show what its requests were decided."""
    part: dict[str, Any] = {
        "started": _now(),
        "machine": _machine(),
        "seconds_per_run": seconds,
        "rounds": rounds,
        # First, while none of the bench's servers competes for the cores.
        "micro": measure_privacy_step(quick, runs=1 if quick else 3),
    }
    counters: dict[str, float] = {}

    def read_counters(metrics: str) -> None:
        for key, name, labels in PRIVACY_COUNTERS:
            counters[key] = read_metric(metrics, name, labels)

    with BenchStack() as stack:
        stack.command("consumers", "init")
        stack.command("tracker", "programs", "load", str(DEMO))
        with canned_kinesis(stack) as to_canned:
            part["http"], _ = _http_cases(
                stack,
                _privacy_cases(),
                1,
                seconds,
                rounds,
                {**to_canned, **PRIVACY_SETTINGS},
                after=read_counters,
            )
    part["counters"] = counters
    return part


def _privacy_cases() -> list[Case]:
    """The defaults, consent granted with a uid, and GPC. The TC string is a realistic one
    (purposes 1-10, ~500 vendors as a bit field, 755 among them); after the first request its
    decision comes from the memo, but its ~280 characters are parsed with every query."""
    granted = granted_string()
    consent = f"{PIXEL}&gdpr=1&gdpr_consent={granted}&uid={USER_ID}"
    return [
        Case("pixel, cached valid", PIXEL, 100, 1),
        Case("pixel, consent granted + uid", consent, 100, 1),
        Case("pixel, GPC", PIXEL, 100, 1, headers=("Sec-GPC: 1",)),
    ]


def _integrity(seconds: float, rounds: int, quick: bool) -> dict[str, Any]:
    """The checks alone, in process (three runs), then the HTTP cases of bench/integrity_http.py
    against the bare server, one tracker per group of settings shipping to the canned endpoint;
    each case with what the tracker counted during it (events by ivt, duplicate checks) and the
    CPU Redis spent."""
    part: dict[str, Any] = {
        "started": _now(),
        "machine": _machine(),
        "seconds_per_run": seconds,
        "rounds": rounds,
        # First, while none of the bench's servers competes for the cores.
        "micro": measure_integrity_checks(quick, runs=1 if quick else 3),
    }
    rows: list[dict[str, Any]] = []
    with BenchStack() as stack:
        stack.command("consumers", "init")
        stack.command("tracker", "programs", "load", str(DEMO))
        assert stack.redis is not None
        assert stack.redis.process is not None
        observe = observer(stack.redis.process.pid)
        # The Redis client's CPU per duplicate check, with the stack's servers idle.
        part["micro"]["paths"] += measure_redis_check(
            stack.env["REDIS_URL"], quick, runs=1 if quick else 3
        )
        with canned_kinesis(stack) as to_canned:
            for group in groups():
                summaries, _ = _http_cases(
                    stack,
                    group.cases,
                    1,
                    seconds,
                    rounds,
                    {**to_canned, **group.extra},
                    observe=observe,
                )
                rows += [_integrity_row(row, group.settings) for row in summaries]
    part["http"] = rows
    return part


def _capacity(quick: bool) -> dict[str, Any]:
    """The figures of docs/capacity.md (bench/capacity.py), a few minutes."""
    return {"started": _now(), "machine": _machine(), **measure_capacity(quick)}


def _integrity_row(row: dict[str, Any], settings: str) -> dict[str, Any]:
    """A case's summary with its settings, and Redis's CPU per tracker request."""
    observed = row.get("observed", {})
    redis_cpu = observed.pop(REDIS_CPU, None)
    per_request = (
        round(1e6 * redis_cpu / row["requests"], 1)
        if redis_cpu is not None and row["requests"]
        else None
    )
    return {**row, "settings": settings, "redis_cpu_us_per_request": per_request}


def _previous_report() -> dict[str, Any]:
    """The last run's report, to which a partial run adds its part."""
    path = RESULTS / "latest.json"
    if path.exists():
        previous: dict[str, Any] = json.loads(path.read_text())
        return previous
    return {"started": _now(), "machine": _machine()}


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def _http_cases(
    stack: BenchStack,
    cases: list[Case],
    workers: int,
    seconds: float,
    rounds: int,
    extra: dict[str, str] | None = None,
    after: Callable[[str], None] | None = None,
    observe: Callable[[str], dict[str, float]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The cases' summaries, and what shipping cost in Kinesis records and payload units;
    `after`, if given, is called with the tracker's /metrics URL once every case has run;
    `observe`, if given, reads numbers from it before and after each case, and the summary
    keeps their differences as "observed"."""
    tracker_port = free_port()
    settings = {"TRACKER_PORT": str(tracker_port), "TRACKER_WORKERS": str(workers), **(extra or {})}
    tracker = stack.process("tracker", ["tracker", "serve"], tracker_port, settings)
    baselines = {kind: _baseline(stack, kind, workers) for kind in {c.baseline for c in cases}}
    tracker.start()
    for baseline in baselines.values():
        baseline.start()
    try:
        time.sleep(1.0)  # every worker bound and subscribed
        assert tracker.process is not None
        metrics = f"http://127.0.0.1:{tracker_port}/metrics"

        def settle() -> None:
            if workers == 1:  # one scrape reaches one worker; with two, give them time
                wait_zero(metrics, "tracker_ship_buffer_depth", 60)
            time.sleep(0.5)

        summaries = []
        for case in cases:
            baseline = baselines[case.baseline]
            assert baseline.process is not None
            before = observe(metrics) if observe is not None else {}
            measured = measure(
                case,
                f"http://127.0.0.1:{tracker_port}",
                f"http://127.0.0.1:{baseline.port}",
                (tracker.process.pid, baseline.process.pid),
                rounds,
                seconds,
                settle,
            )
            summary = measured.summary()
            if observe is not None:
                after_case = observe(metrics)
                summary["observed"] = {
                    key: round(value - before.get(key, 0.0), 6) for key, value in after_case.items()
                }
            summaries.append(summary)
        if after is not None:
            after(metrics)
        return summaries, _shipping_cost(metrics)
    finally:
        tracker.stop()
        for baseline in baselines.values():
            baseline.stop()


def _baseline(stack: BenchStack, kind: str, workers: int) -> ManagedProcess:
    port = free_port()
    argv = ["bench.baseline_server", str(port), str(workers)]
    if kind == PRE_SERIALIZED:
        argv.append("--pre-serialized")
    return stack.process(f"baseline-{kind}", argv, port)


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


def _shipping_cost(metrics_url: str) -> dict[str, float]:
    """Kinesis records and PUT payload units per million events (one worker's scrape)."""
    events = read_metric(metrics_url, "tracker_ship_events_shipped_total")
    if not events:
        return {}
    per_million = 1_000_000 / events
    records = read_metric(metrics_url, "tracker_ship_kinesis_records_total")
    units = read_metric(metrics_url, "tracker_ship_payload_units_total")
    return {
        "events_shipped": events,
        "records_per_million_events": round(records * per_million),
        "payload_units_per_million_events": round(units * per_million),
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
