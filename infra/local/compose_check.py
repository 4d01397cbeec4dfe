"""`make compose-test`: the compose stack on a real Docker engine, end to end.

1. Builds the images: the service image and kinesalite (through compose) and the Lambda target.
2. `up -d` under a project name (and network name) of its own, so that a developer's own stack
   is never touched, and waits until every service is healthy and `init` has exited 0.
3. Invokes the Lambda image's handler with one event, then sends pixels and clicks from the host
   to 127.0.0.1:8080, each with a marker of its own; then finds exactly their items in DynamoDB
   (every one, once, nothing else) with `consumers show` in the consumers' container.
4. The reports service on 127.0.0.1:8090: /healthz answers; a key made with `reports keys
   create` in its container lists exactly the demo customer's programs; the program's report
   counts exactly the impressions and clicks sent (from the rollups the consumers wrote).
5. The event lake (Glue catalog and S3 warehouse on moto): `consumers lake query` in the lake
   worker's container finds one row for each item the tracker's events made (same message ids
   and event types, none twice, nothing else; the Lambda's record never was on the stream), once
   the worker has committed; `consumers lake maintain` exits 0 and leaves exactly those rows.
6. Stops the stack and checks that every container, the one-shot `init` too, exited 0: the app
   services stop first (they depend on the backends' health) and drain into live backends.
7. Always removes the stack (`down -v`); on a failure it prints the services' logs first.

Every wait is bounded. Run from the repository root: .venv/bin/python infra/local/compose_check.py
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from compose_stack import (
    CheckError,
    ContainerState,
    Project,
    compose_command,
    image_present,
    run,
    say,
    wait_until,
)
from compose_traffic import (
    MARKER_PARAM,
    Comparison,
    Sent,
    Tracker,
    compare,
    get_json,
    parse_items,
    parse_json_line,
    send_pixels_and_clicks,
)
from lambda_check import Invocation, build_lambda_image, invoke_events_handler

PIXELS, CLICKS = 50, 20
PROGRAM = "demo-shoes"
TRACKER_PORT, REPORTS_PORT = 8080, 8090
ENV_FILE = "infra/local/containers.env"
DEMO_PROGRAMS = Path("infra/local/programs.json")
# The services of the stack (profiles aside); a service added to the compose file belongs here.
SERVICES = frozenset(
    {
        "redis",
        "kinesis",
        "dynamodb",
        "init",
        "tracker",
        "consumers-events",
        "consumers-programs",
        "consumers-lake",
        "reports",
    }
)
ONE_SHOT = "init"
BACKENDS = frozenset({"redis", "kinesis", "dynamodb"})
SUPPORTED_NODE_IMAGE = "node:24-alpine"
STAND_IN_NODE_IMAGE = "node:20-alpine"  # the only Node.js image where no registry is reachable
BUILD_SECONDS, UP_SECONDS, HEALTHY_SECONDS, STORED_SECONDS, STOP_SECONDS = 900, 300, 180, 90, 180
COUNTED_SECONDS = 60  # the rollups are written with the items: counted when they are stored
LAKE_SERVICE = "consumers-lake"
LAKE_COMMIT_SECONDS = 5  # the lake worker's LAKE_COMMIT_SECONDS in docker-compose.yml
# The worker commits what it read at least every LAKE_COMMIT_SECONDS; then a margin for a commit
# on a busy machine (writing the files to S3, Glue's update) and for each query's own start-up.
LAKE_SECONDS = LAKE_COMMIT_SECONDS + 40
LAKE_QUERY = "SELECT message_id, event_type FROM events ORDER BY message_id"

T = TypeVar("T")


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so that `finally` still removes the stack
    started = time.monotonic()
    name = f"adtracker-ct-{secrets.token_hex(4)}"
    passed = False
    project: Project | None = None
    try:
        if run(["docker", "info"], timeout=60).returncode != 0:
            raise CheckError("no Docker engine answers: start one first")
        _require_free_port(TRACKER_PORT)
        _require_free_port(REPORTS_PORT)
        node_image = _node_image()
        say(f"kinesalite is built on {node_image}")
        variables = {"ADTRACKER_NETWORK": f"{name}-net", "KINESALITE_NODE_IMAGE": node_image}
        project = Project(name, compose_command(), variables)
        _check_stack(project)
        passed = True
    except CheckError as exc:
        say(f"FAILED: {exc}")
    finally:
        if project is not None:
            _remove(project, show_logs=not passed)
    say(f"{'passed' if passed else 'failed'} in {time.monotonic() - started:.0f} s")
    return 0 if passed else 1


def _check_stack(project: Project) -> None:
    _timed("built the images", lambda: _build(project))
    _timed("the stack is up and healthy", lambda: _up(project))
    by_lambda, from_host = _send(project)
    sent = [by_lambda, *from_host]
    items = _timed(f"found exactly the {len(sent)} items", lambda: _find_items(project, sent))
    _timed("the reports service counts exactly them", lambda: _check_reports(project, sent))
    from_stream = _items_of(from_host, items)
    _timed(
        f"the lake holds exactly the {len(from_stream)} events of the stream",
        lambda: _check_lake(project, from_stream),
    )
    _timed("stopped: every container exited 0, the app services first", lambda: _stop(project))


def _timed(done: str, step: Callable[[], T]) -> T:
    started = time.monotonic()
    result = step()
    say(f"{done} ({time.monotonic() - started:.1f} s)")
    return result


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _require_free_port(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise CheckError(f"127.0.0.1:{port} is taken (a `make run` or another stack?)")


def _node_image() -> str:
    """kinesalite's base: the supported Node.js unless it cannot be had, then the stand-in."""
    chosen = os.environ.get("KINESALITE_NODE_IMAGE")
    if chosen:
        return chosen
    if image_present(SUPPORTED_NODE_IMAGE):
        return SUPPORTED_NODE_IMAGE
    if run(["docker", "pull", "-q", SUPPORTED_NODE_IMAGE], timeout=300).returncode == 0:
        return SUPPORTED_NODE_IMAGE
    if not image_present(STAND_IN_NODE_IMAGE):
        raise CheckError(f"neither {SUPPORTED_NODE_IMAGE} nor {STAND_IN_NODE_IMAGE} is available")
    version = run(["docker", "run", "--rm", STAND_IN_NODE_IMAGE, "node", "--version"], timeout=60)
    say(
        f"NOTE: {SUPPORTED_NODE_IMAGE} cannot be pulled here; kinesalite is built on the local "
        f"{STAND_IN_NODE_IMAGE} instead (Node.js {version.stdout.strip() or 'of unknown version'})"
    )
    return STAND_IN_NODE_IMAGE


def _build(project: Project) -> None:
    project.compose("build", timeout=BUILD_SECONDS)
    build_lambda_image(timeout=BUILD_SECONDS)


def _up(project: Project) -> None:
    project.compose("up", "-d", timeout=UP_SECONDS)
    wait_until("every service healthy", HEALTHY_SECONDS, lambda: _all_healthy(project))


def _all_healthy(project: Project) -> bool:
    """True once every service is healthy and init is done; a service that failed fails at once."""
    states = {state.service: state for state in project.containers()}
    for state in states.values():
        if state.service == ONE_SHOT:
            if state.status == "exited" and state.exit_code != 0:
                raise CheckError(f"{state.name} exited {state.exit_code}")
        elif state.status in {"exited", "dead", "restarting"} or state.health == "unhealthy":
            raise CheckError(f"{state.name} is {state.health or state.status}")
    return set(states) >= SERVICES and all(
        (state.status == "exited") if service == ONE_SHOT else (state.health == "healthy")
        for service, state in states.items()
    )


def _send(project: Project) -> tuple[Sent, list[Sent]]:
    """The Lambda's event, and the tracker's.

    The Lambda's event first: its record claims a made-up position on the stream's first
    shard, below any that kinesalite hands out. Sent after the tracker's events, a rollup
    writer that keeps per-shard positions would rightly take it for a redelivery of a record
    already counted there; sent before, it is the first record of its bucket."""
    run_id = project.name.removeprefix("adtracker-")
    invocation = Invocation(
        project.variables["ADTRACKER_NETWORK"], ENV_FILE, PROGRAM, f"{run_id}-lambda-0"
    )
    by_lambda = invoke_events_handler(invocation)
    tracker = Tracker("127.0.0.1", TRACKER_PORT, PROGRAM, _program(PROGRAM)["landing_url"])
    sent = send_pixels_and_clicks(tracker, run_id, PIXELS, CLICKS)
    say(f"sent {PIXELS} pixels and {CLICKS} clicks from the host, every answer as expected")
    return by_lambda, sent


def _demo_programs() -> list[dict[str, Any]]:
    programs: list[dict[str, Any]] = json.loads(DEMO_PROGRAMS.read_text())
    return programs


def _program(program_id: str) -> dict[str, Any]:
    return next(p for p in _demo_programs() if p["program_id"] == program_id)


def _find_items(project: Project, sent: list[Sent]) -> list[dict[str, Any]]:
    """Poll the events table until every request's item is there; then it must be exact.
    Returns the items."""
    show = ["consumers", "show", PROGRAM, "--minutes", "30", "--limit", "1000"]
    exec_show = ["exec", "-T", "-e", "LOG_LEVEL=WARNING", "consumers-events", *show]
    outcome: list[Comparison] = []
    items: list[dict[str, Any]] = []

    def all_stored() -> bool:
        items[:] = parse_items(project.compose(*exec_show, timeout=60).stdout)
        outcome[:] = [compare(sent, items)]
        return not outcome[0].missing

    try:
        wait_until("every request's item in DynamoDB", STORED_SECONDS, all_stored)
    except CheckError as exc:
        raise CheckError(f"{exc}: {outcome[0].describe() if outcome else ''}") from None
    if not outcome[0].exact:
        raise CheckError(f"items in DynamoDB: {outcome[0].describe()}")
    return items


def _check_reports(project: Project, sent: list[Sent]) -> None:
    """/healthz; a new key of the program's customer lists that customer's demo programs; the
    program's report (the last 7 days, UTC, by day) counts exactly the events sent."""
    health = get_json("127.0.0.1", REPORTS_PORT, "/healthz")
    if health.status != 200:
        raise CheckError(f"reports /healthz: {health.status}")
    customer = int(_program(PROGRAM)["customer_id"])
    auth = {"Authorization": f"Bearer {_create_key(project, customer)}"}
    listed = get_json("127.0.0.1", REPORTS_PORT, "/v1/programs", auth)
    expected_programs = sorted(
        str(p["program_id"]) for p in _demo_programs() if p["customer_id"] == customer
    )
    if listed.status != 200 or not isinstance(listed.body, list):
        raise CheckError(f"reports /v1/programs: {listed.status} {listed.body!r}")
    if sorted(str(p.get("program_id")) for p in listed.body) != expected_programs:
        raise CheckError(f"/v1/programs listed {listed.body!r}, expected {expected_programs}")
    unauthorized = get_json("127.0.0.1", REPORTS_PORT, "/v1/programs")
    if unauthorized.status != 401 or "www-authenticate" not in unauthorized.headers:
        raise CheckError(f"/v1/programs without a key: {unauthorized.status}")
    say(f"reports lists {', '.join(expected_programs)} for customer {customer}")
    _wait_for_counts(auth, sent)


def _create_key(project: Project, customer: int) -> str:
    create = ["reports", "keys", "create", "--customer", str(customer), "--name", "compose-test"]
    done = project.compose("exec", "-T", "-e", "LOG_LEVEL=WARNING", "reports", *create, timeout=60)
    answer = parse_json_line(done.stdout, "key")
    if answer.get("customer_id") != customer or not str(answer["key"]).startswith("adt_"):
        raise CheckError(f"reports keys create printed {answer!r}")
    return str(answer["key"])


def _wait_for_counts(auth: dict[str, str], sent: list[Sent]) -> None:
    """Poll the report until it counts every event sent (the rollups are written in the same
    batch as the items, so at once here); then the counts must be exact: none twice."""
    kinds = Counter(request.event_type for request in sent)
    expected = {"impressions": kinds["IMPRESSION"], "clicks": kinds["CLICK"]}
    path = f"/v1/reports/{PROGRAM}?granularity=day&tz=UTC"
    totals: dict[str, Any] = {}

    def all_counted() -> bool:
        report = get_json("127.0.0.1", REPORTS_PORT, path, auth)
        if report.status != 200 or not isinstance(report.body, dict):
            raise CheckError(f"GET {path}: {report.status} {report.body!r}")
        totals.clear()
        totals.update(report.body.get("totals") or {})
        return all(int(totals.get(name, 0)) >= count for name, count in expected.items())

    try:
        wait_until("the report counts every event sent", COUNTED_SECONDS, all_counted)
    except CheckError as exc:
        raise CheckError(f"{exc}: expected {expected}, the report's totals: {totals}") from None
    counted = {name: totals.get(name) for name in expected}
    if counted != expected:
        raise CheckError(f"the report counts {counted}, expected exactly {expected}")
    say(f"the report of {PROGRAM} counts exactly {expected}")


def _items_of(sent: Iterable[Sent], items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The message ids and event types of the items these requests made (found exactly once
    each by _find_items)."""
    markers = {request.marker for request in sent}
    return {
        str(item["message_id"]): str(item["event_type"])
        for item in items
        if isinstance(item.get("params"), dict) and item["params"].get(MARKER_PARAM) in markers
    }


def _check_lake(project: Project, expected: dict[str, str]) -> None:
    """Poll the lake until it holds a row of every expected event (the worker commits at least
    every LAKE_COMMIT_SECONDS); then its rows must be exactly them: each message id once, with
    its item's event type, and no other. `lake maintain` then exits 0 and changes none."""
    rows: list[tuple[str, str]] = []

    def all_committed() -> bool:
        rows[:] = _lake_rows(project)
        return {message_id for message_id, _ in rows} >= set(expected)

    try:
        wait_until("a lake row of every event", LAKE_SECONDS, all_committed)
    except CheckError as exc:
        raise CheckError(f"{exc}: {_lake_differences(expected, rows)}") from None
    if differences := _lake_differences(expected, rows):
        raise CheckError(f"the lake's rows: {differences}")
    say(f"the lake has {len(rows)} rows, one for each of the items, by message id and event type")
    maintain = ["exec", "-T", "-e", "LOG_LEVEL=WARNING", LAKE_SERVICE, "consumers", "lake"]
    report = parse_json_line(project.compose(*maintain, "maintain", timeout=120).stdout, "command")
    if report.get("command") != "lake maintain":
        raise CheckError(f"consumers lake maintain printed {report!r}")
    if differences := _lake_differences(expected, _lake_rows(project)):
        raise CheckError(f"the lake's rows after `consumers lake maintain`: {differences}")
    say(f"consumers lake maintain: {report}; the rows are unchanged")


def _lake_rows(project: Project) -> list[tuple[str, str]]:
    """The lake's (message_id, event_type) rows, by `consumers lake query` in the worker's
    container (it prints a JSON array; logs go to stderr)."""
    query = ["consumers", "lake", "query", LAKE_QUERY, "--format", "json"]
    done = project.compose(
        "exec", "-T", "-e", "LOG_LEVEL=WARNING", LAKE_SERVICE, *query, timeout=120
    )
    try:
        rows = json.loads(done.stdout)
    except ValueError:
        raise CheckError(f"consumers lake query printed: {done.stdout[-500:]!r}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise CheckError(f"consumers lake query printed: {done.stdout[-500:]!r}")
    return [(str(row.get("message_id")), str(row.get("event_type"))) for row in rows]


def _lake_differences(expected: Mapping[str, str], rows: list[tuple[str, str]]) -> str:
    """What differs between the expected events and the lake's rows; empty when nothing."""
    found = Counter(message_id for message_id, _ in rows)
    parts = {
        "missing": sorted(set(expected) - set(found)),
        "twice or more": sorted(message_id for message_id, n in found.items() if n > 1),
        "foreign": sorted(set(found) - set(expected)),
        "wrong event_type": sorted(
            {m for m, kind in rows if m in expected and kind != expected[m]}
        ),
    }
    described = "; ".join(f"{name}: {_few(ids)}" for name, ids in parts.items() if ids)
    return f"{len(rows)} rows for {len(expected)} events; {described}" if described else ""


def _few(ids: list[str]) -> str:
    return f"{len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"


def _stop(project: Project) -> None:
    project.compose("stop", timeout=STOP_SECONDS)
    states = project.containers()
    missing = SERVICES - {state.service for state in states}
    if missing:
        raise CheckError(f"no container for {', '.join(sorted(missing))}")
    failed = [f"{s.name}: {s.status} {s.exit_code}" for s in states if s.exit_code != 0]
    failed += [f"{s.name}: {s.status}" for s in states if s.status != "exited"]
    if failed:
        raise CheckError("after stop: " + "; ".join(failed))
    _require_backends_stopped_last(states)


def _require_backends_stopped_last(states: list[ContainerState]) -> None:
    """The app services drain into live backends: each stopped before any backend did."""
    backends_stopped = min(s.finished_at for s in states if s.service in BACKENDS)
    late = [
        s.name
        for s in states
        if s.service not in BACKENDS | {ONE_SHOT} and s.finished_at > backends_stopped
    ]
    if late:
        raise CheckError(f"stopped after the first backend: {', '.join(late)}")


def _remove(project: Project, show_logs: bool) -> None:
    try:
        if show_logs:
            logs = project.compose("logs", "--no-color", "--tail", "200", timeout=60, check=False)
            sys.stdout.write(logs.stdout + logs.stderr)
    except CheckError as exc:
        say(f"no logs: {exc}")
    try:
        project.compose("down", "-v", "--remove-orphans", "-t", "30", timeout=STOP_SECONDS)
        say(f"removed the stack {project.name}")
    except CheckError as exc:
        say(f"could not remove the stack {project.name}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
