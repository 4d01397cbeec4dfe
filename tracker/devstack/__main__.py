"""`make run`: the whole local stack in the foreground, stopped cleanly by Ctrl-C or SIGTERM.

Every service is a child process (`python -m tracker|consumers|reports ...`): the tracker never
imports the consumers or the reports, here neither.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from tracker.devstack.demo_traffic import ConvertingProgram, send_demo_traffic
from tracker.devstack.processes import (
    LOOPBACK,
    REPO_ROOT,
    ManagedProcess,
    emulator_env,
    kinesalite,
    moto_server,
    redis_server,
)

DEMO_PROGRAMS = REPO_ROOT / "infra" / "local" / "programs.json"
# The program the printed examples use; the demo report key is for its customer.
DEMO_PROGRAM = "demo-shoes"
# The program with click_id_param the conversion examples use; a second demo report key is for
# its customer (demo-shoes keeps its plain clicks: the bench compares a click with and without
# a click id on these two).
CONVERSION_PROGRAM = "demo-shop"
# The settings that point a shell at the running stack: `make show` and the README use it.
ENV_FILE = Path(os.environ.get("LOCAL_STACK_DIR", REPO_ROOT / ".stack")) / "env"
# The demo's lake (SQLite catalog, file warehouse). It starts empty, like the emulators: its
# stream positions would name the sequence numbers of a stream that no longer exists.
LAKE_DIR = Path(os.environ.get("LOCAL_LAKE_DIR", REPO_ROOT / ".adtracker" / "lake"))
LAKE_QUERY = (
    '.venv/bin/consumers lake query "SELECT programid, event_type, count(*) AS events '
    'FROM events GROUP BY ALL ORDER BY ALL" --format csv'
)


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class LocalStack:
    def __init__(self) -> None:
        self.redis_port = _port("LOCAL_REDIS_PORT", 6390)
        self.kinesis_port = _port("LOCAL_KINESIS_PORT", 4567)
        self.dynamodb_port = _port("LOCAL_DYNAMODB_PORT", 4569)
        self.tracker_port = _port("TRACKER_PORT", 8080)
        self.reports_port = _port("REPORTS_PORT", 8090)
        self.events_metrics_port = _port("LOCAL_EVENTS_METRICS_PORT", 9101)
        self.programs_metrics_port = _port("LOCAL_PROGRAMS_METRICS_PORT", 9102)
        self.lake_metrics_port = _port("LOCAL_LAKE_METRICS_PORT", 9103)
        self.env = {
            **os.environ,
            "TRACKER_HOST": os.environ.get("TRACKER_HOST", LOOPBACK),
            "REPORTS_HOST": os.environ.get("REPORTS_HOST", LOOPBACK),
            "REPORTS_PORT": str(self.reports_port),
            "CONSUMER_METRICS_HOST": LOOPBACK,
            "LAKE_DIR": str(LAKE_DIR),
            # A demo should show its events in the lake within seconds, not a minute.
            "LAKE_COMMIT_SECONDS": os.environ.get("LAKE_COMMIT_SECONDS", "5"),
            **emulator_env(self.redis_port, self.kinesis_port, self.dynamodb_port),
            **_privacy_env(),
        }
        self.started: list[ManagedProcess] = []
        self.stopping = False
        self.report_key = ""
        self.conversion_report_key = ""

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            self._start_all()
            self._print_urls()
            parent = os.getppid()
            # `make run` does not pass SIGTERM on to its recipe: a new parent means make is gone.
            while not self.stopping and os.getppid() == parent:
                for process in self.started:
                    if not process.running:
                        print(f"[stack] {process.name} exited; stopping the stack", flush=True)
                        return 1
                time.sleep(0.2)
            return 0
        finally:
            self._stop_all()

    def _start_all(self) -> None:
        print("[stack] starting redis-server, kinesalite, moto server", flush=True)
        ENV_FILE.parent.mkdir(exist_ok=True)
        stack_env = {
            **emulator_env(self.redis_port, self.kinesis_port, self.dynamodb_port),
            # `consumers privacy` run against this stack needs the key the tracker used.
            "USER_ID_KEY": self.env["USER_ID_KEY"],
        }
        ENV_FILE.write_text("".join(f"{key}={value}\n" for key, value in stack_env.items()))
        for process in (
            redis_server(self.redis_port),
            kinesalite(self.kinesis_port),
            moto_server(self.dynamodb_port),
        ):
            self.started.append(process.start())
        shutil.rmtree(LAKE_DIR, ignore_errors=True)
        self._step("consumers", "init")
        self._step("tracker", "programs", "load", str(DEMO_PROGRAMS))
        self._start_consumers()
        tracker = ManagedProcess(
            "tracker",
            [*self._command("tracker"), "serve"],
            self.tracker_port,
            env=self.env,
            output=sys.stdout.buffer,
        )
        self.started.append(tracker.start())
        # After `consumers init`: the rollup and report-key tables exist, under the same names
        # (ROLLUP_TABLE, REPORT_KEYS_TABLE from self.env) as the events consumer writes.
        reports = ManagedProcess(
            "reports",
            [*self._command("reports"), "serve"],
            self.reports_port,
            env=self.env,
            output=sys.stdout.buffer,
        )
        self.started.append(reports.start())
        self._create_report_keys()
        self._send_demo_traffic()

    def _start_consumers(self) -> None:
        for kind, port in (
            ("events", self.events_metrics_port),
            ("programs", self.programs_metrics_port),
            ("lake", self.lake_metrics_port),
        ):
            env = {**self.env, "CONSUMER_METRICS_PORT": str(port)}
            consumer = ManagedProcess(
                f"consumers {kind}",
                [*self._command("consumers"), kind],
                port,
                env=env,
                output=sys.stdout.buffer,
            )
            self.started.append(consumer.start())

    def _create_report_keys(self) -> None:
        """One for the demo program's customer, one for the conversion program's."""
        self.report_key = self._create_report_key(_demo_customer())
        self.conversion_report_key = self._create_report_key(_customer_of(CONVERSION_PROGRAM))

    def _send_demo_traffic(self) -> None:
        """A few hundred pixels and clicks and a few conversions, so that the dashboard shows
        something at once."""
        if os.environ.get("LOCAL_DEMO_TRAFFIC", "1") == "0":
            return
        param = str(_demo_program(CONVERSION_PROGRAM)["click_id_param"])
        sent = send_demo_traffic(
            self.tracker_port,
            (DEMO_PROGRAM, "demo-books", CONVERSION_PROGRAM),
            ConvertingProgram(CONVERSION_PROGRAM, param),
        )
        print(
            f"[stack] demo traffic: {sent.pixels} pixels, {sent.clicks} clicks, "
            f"{sent.conversions} conversions",
            flush=True,
        )

    def _command(self, name: str) -> list[str]:
        return [sys.executable, "-m", name]

    def _step(self, *argv: str) -> None:
        print(f"[stack] {' '.join(argv)}", flush=True)
        subprocess.run([*self._command(argv[0]), *argv[1:]], env=self.env, check=True)

    def _create_report_key(self, customer_id: int) -> str:
        """`reports keys create` for the demo customer; its one JSON line holds the key."""
        argv = ["reports", "keys", "create", "--customer", str(customer_id), "--name", "demo"]
        print(f"[stack] {' '.join(argv)}", flush=True)
        done = subprocess.run(
            [*self._command("reports"), *argv[1:]],
            env=self.env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        return _key_from_output(done.stdout)

    def _print_urls(self) -> None:
        base = f"http://{LOOPBACK}:{self.tracker_port}"
        reports = f"http://{LOOPBACK}:{self.reports_port}"
        auth = f"Authorization: Bearer {self.report_key}"
        shop = CONVERSION_PROGRAM
        param = _demo_program(shop)["click_id_param"]
        # curl is a known crawler: its click is not billable, its orders count as unattributed.
        browser = "-A 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0'"
        print(
            f"""
[stack] ready. Try:
  curl -i '{base}/v1/pixel?program=demo-shoes'
  curl -i '{base}/v1/click?program=demo-shoes'
  curl -i '{base}/event/demo-shoes'
  curl -s '{base}/readyz'
  curl -s '{base}/metrics' | grep ^tracker_
  curl -i '{base}/v1/pixel?program=demo-shoes&uid=alice'    # stored as user_key only
  curl -i -H 'Sec-GPC: 1' '{base}/v1/pixel?program=demo-shoes'  # no identifier kept
  make show PROGRAM=demo-shoes    # its events in DynamoDB, a few seconds later
  curl -si {browser} '{base}/v1/click?program={shop}' | grep -i ^location
  # CLICK_ID: the {param} value in the Location header above (a click id, 32 hex digits)
  curl -i '{base}/v1/conversion?program={shop}&click_id=CLICK_ID&order_id=A-1001\
&value=49.90&currency=EUR'    # the order, attributed to that click
Reports: the dashboard is {reports}/ ; paste this key (customer {_demo_customer()}):
  {self.report_key}
  curl -s -H '{auth}' '{reports}/v1/programs'
  curl -s -H '{auth}' '{reports}/v1/reports/{DEMO_PROGRAM}?granularity=hour'
  (the requests above show in the report once the events consumer has counted them)
Conversions ({shop}'s, the demo's and yours) show with this key (customer {_customer_of(shop)}):
  {self.conversion_report_key}
The event lake (Iceberg, under {LAKE_DIR}; every event within ~10 s):
  {LAKE_QUERY}
Redis {self.env["REDIS_URL"]}, Kinesis {self.env["AWS_ENDPOINT_URL_KINESIS"]}, \
DynamoDB {self.env["AWS_ENDPOINT_URL_DYNAMODB"]}. Ctrl-C stops everything.
""",
            flush=True,
        )

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _stop_all(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the drain
        for process in reversed(self.started):
            print(f"[stack] stopping {process.name}", flush=True)
            process.stop()
        print("[stack] stopped", flush=True)


def _privacy_env() -> dict[str, str]:
    """A USER_ID_KEY for this stack (a new one per start: its data lives in memory only), unless
    one is given."""
    return {"USER_ID_KEY": os.environ.get("USER_ID_KEY") or secrets.token_hex(24)}


def _demo_customer() -> int:
    """The customer of the demo program in infra/local/programs.json."""
    return _customer_of(DEMO_PROGRAM)


def _customer_of(program_id: str) -> int:
    return int(_demo_program(program_id)["customer_id"])


def _demo_program(program_id: str) -> dict[str, Any]:
    """A program of infra/local/programs.json, as written there."""
    programs: list[dict[str, Any]] = json.loads(DEMO_PROGRAMS.read_text())
    return next(p for p in programs if p["program_id"] == program_id)


def _key_from_output(output: str) -> str:
    """The key from `reports keys create`'s output: its JSON line with a "key" (log lines, if
    any, are JSON too, without one)."""
    for line in output.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        key = answer.get("key") if isinstance(answer, dict) else None
        if isinstance(key, str):
            return key
    raise RuntimeError(f"`reports keys create` printed no key: {output[-500:]!r}")


def main() -> int:
    try:
        return LocalStack().run()
    except FileNotFoundError as exc:
        print(f"[stack] {exc}", file=sys.stderr)
        return 3
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"[stack] step failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
