"""What one hostile request costs the tracker, against a typical pixel: the CPU seconds a real
`tracker serve` process spends per request for each shape of request a client can send to make
it work hard (fresh maximal TC strings, 64 long query parameters, 4 KiB headers that are new
every time, as many of them as a head may carry, a signed click with many parameters and a bad
signature, a fresh `uid`, ...).

    .venv/bin/python -m bench.hostile_cost [--seconds S] [--rounds N] [--only TEXT]...
        [--rev REV] [--out PATH]

One tracker (one worker; `TCF_VENDOR_ID`, `USER_ID_KEY` and `CLICK_SIGNING_KEYS` set, so that
every check runs) on the bench stack (redis-server, kinesalite, moto server, `bench/stack.py`),
shipping to the canned Kinesis endpoint, as in bench.run. Each shape runs for S seconds under
`wrk` (two threads, CONCURRENCY connections) with a Lua script that makes every request from
the shape's template: wherever the template holds the placeholder FRESH, each request puts six
base64url characters of its own (the wrk thread's, then its own count), so that no memo of the
tracker (TC strings, user agents, clients, uids) ever hits for a fresh shape; in a TC string
they replace its Created field, which changes nothing else. The typical pixel (a browser's user
agent and referer and the rest of the headers Chrome sends with an image, the same every time:
the memos hit, as for most traffic) runs at the start and at the end of each round; its median
is what the shapes are compared with.

A shape's figure is the tracker process's CPU (user + system, /proc) over its run and the
shipping that follows it (until the event buffer is empty), less what the idle process spends
in as long, divided by the requests wrk completed. Every shape's answers are checked: wrk
counts those that are not 2xx or 3xx, and the tracker's counters of consent decisions and
invalid-traffic reasons are read around each run (in the JSON, "observed").

The shapes: each input alone at its worst (a URL holds at most ~8,100 characters, a header
MAX_HEADER_FIELD_BYTES and a head MAX_HEADERS of them: the tracker's aiohttp refuses more),
three that carry everything at once (the costliest URL of the pixel and of the click route,
with a new 4 KiB user agent and referer, the last also with every other header a head may
hold, at 4 KiB), and for reference the same sizes repeated every request, so that every memo
hits: what aiohttp and the event's size cost on their own. With --rev the tracker is `tracker/`
of that git revision (`git archive`, as bench.versus runs one), to measure before and after a
change.

Every process binds 127.0.0.1; every run is bounded by its seconds, every wait by a timeout.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from bench.browser import REFERER, USER_AGENT, headers
from bench.demo_programs import DEMO_PIXEL, DEMO_PROGRAM_ID
from bench.hey import HEY_TIMEOUT_MARGIN
from bench.metrics_probe import metric_value, scrape, wait_zero
from bench.privacy_inputs import USER_ID_KEY_TEXT, VENDOR_ID
from bench.procstat import cpu_seconds, idle_cpu_per_second
from bench.raw_load import run_raw_load
from bench.signed_links import SIGNING_KEY, SIGNING_KEYS_TEXT, link
from bench.stack import BenchStack, canned_kinesis, demo_stack, pid_of
from bench.versus import export_tracker
from bench.wrk import THREADS, ensure_wrk, parse
from tests.support.tcf_strings import tc_string
from tracker.devstack.processes import REPO_ROOT, ManagedProcess, free_port
from tracker.head_bound import MAX_HEAD_BYTES
from tracker.privacy.tcf import MAX_RANGE_ENTRIES
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.server import MAX_HEADER_FIELD_BYTES, MAX_HEADERS

RESULTS = REPO_ROOT / "bench" / "results"
PIXEL = DEMO_PIXEL
CLICK = f"/v1/click?program={DEMO_PROGRAM_ID}"
CONVERSION = f"/v1/conversion?program={DEMO_PROGRAM_ID}"
# Replaced in every request by six base64url characters of its own (see the Lua script).
FRESH = "ZZZZZZ"
# aiohttp refuses a request line or a header line of more than 8,190 bytes: the longest value
# a client can send in either, with room for the rest of the line.
LINE_BUDGET = 8_100
# The longest header value the tracker's aiohttp takes (MAX_HEADER_FIELD_BYTES holds the name
# too, and aiohttp counts a few bytes more than the two).
FIELD_BUDGET = MAX_HEADER_FIELD_BYTES - 64
CONCURRENCY = 32
WRK_TIMEOUT_SECONDS = 10  # an expensive request may wait long in the queue; wrk's default is 2
DRAIN_TIMEOUT_SECONDS = 60
SEED = 5
# The most range entries a TC string of gdpr_consent can hold within the request line (single
# ids, 17 bits each), and the widest bit field (MaxVendorId) that fits there.
MAX_RANGE_ENTRIES_IN_A_URL = 2_800
MAX_BIT_FIELD_IN_A_URL = 48_000
TYPICAL = "typical pixel (a browser's headers, seen before)"
FULL_HEAD = "a head as long as MAX_HEAD_BYTES takes (20 KiB), of 4 KiB headers"
REFUSED_HEAD = "a head past MAX_HEAD_BYTES: 32 headers of 4 KiB, refused with 431"
# "Host: 127.0.0.1:NNNNN\r\n", as wrk sends it.
HOST_LINE_BYTES = 24
REFERENCE = "reference: 8 KiB URL and two 4 KiB headers, the same every request"
UNSIGNED_REFERENCE = "reference: that click without exp, kid and sig, new each request"
# A click as most are: a signed link of a few parameters from a browser seen before, checked
# for a duplicate in Redis (the same client every request: a duplicate after the first).
TYPICAL_CLICK = "reference: a typical click (a signed link, a browser's headers, seen before)"

# For every request: the template (a path, then "Name: value" header lines) with FRESH replaced
# by a code unique to the request: the wrk thread's number, then its own count, in base64url.
LUA = r"""
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local placeholder = "ZZZZZZ"
local threads = 0
local template_path = nil
local template_headers = {}
local count = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  template_path = file:read("*l")
  for line in file:lines() do
    local name, value = line:match("^([^:]+): (.*)$")
    if name then template_headers[name] = value end
  end
  file:close()
end

local function code(number)
  local digits = {alphabet:sub(thread_number + 1, thread_number + 1)}
  for _ = 1, 5 do
    local digit = number % 64
    digits[#digits + 1] = alphabet:sub(digit + 1, digit + 1)
    number = (number - digit) / 64
  end
  return table.concat(digits)
end

function request()
  count = count + 1
  local fresh = code(count)
  local headers = {}
  for name, value in pairs(template_headers) do
    headers[name] = (value:gsub(placeholder, fresh, 1))
  end
  return wrk.format("GET", (template_path:gsub(placeholder, fresh, 1)), headers)
end
"""


@dataclass(frozen=True)
class Shape:
    name: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    status: int = 200  # what the tracker answers (wrk counts 2xx and 3xx alike)
    raw: bool = False  # a head too large for wrk: sent by bench.raw_load instead

    def template(self) -> str:
        lines = [self.path, *(f"{name}: {value}" for name, value in self.headers)]
        assert all("\n" not in line for line in lines), self.name
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ShapeCost:
    """One shape's figures over its runs (the typical pixel's: over its runs in every round)."""

    shape: str
    requests: int
    requests_per_second: float
    cpu_us_per_request: float
    ratio_to_typical: float
    bad_answers: int  # not 2xx/3xx, or socket errors (timeouts included)
    observed: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    seconds_per_run: int
    rounds: int
    idle_cpu_us_per_second: float  # the idle tracker's, taken off every run's CPU
    commit: str | None  # the tracker's commit when not this checkout's


@dataclass(frozen=True)
class HostileReport:
    typical: ShapeCost
    shapes: list[ShapeCost]
    settings: Settings

    @property
    def worst(self) -> ShapeCost:
        return max(self.shapes, key=lambda cost: cost.cpu_us_per_request)

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self.settings),
            "concurrency": CONCURRENCY,
            "typical": asdict(self.typical),
            "worst": asdict(self.worst),
            "shapes": [asdict(cost) for cost in self.shapes],
        }


# --- the shapes ----------------------------------------------------------------------------------


def fresh_tc(tc: str) -> str:
    """`tc` with its characters 1-6 (the core's bits 6-41: the Created field) as FRESH."""
    return tc[0] + FRESH + tc[1 + len(FRESH) :]


def consent_path(tc: str) -> str:
    return f"{PIXEL}&gdpr=1&gdpr_consent={tc}"


def padded(core: str) -> str:
    """`core` and a second segment that takes the string to the longest a URL holds."""
    filler = LINE_BUDGET - len(consent_path(core)) - 1
    filler -= 1 if filler % 4 == 1 else 0  # no base64 text has such a length
    return f"{core}.{'A' * filler}"


def tc_shapes() -> list[Shape]:
    """gdpr=1 with a fresh TC string each request: the longest range section and bit field a
    URL can carry, the longest range section the tracker still reads, and 2-character segments."""
    most = [(2 * n + 1, 2 * n + 1) for n in range(MAX_RANGE_ENTRIES_IN_A_URL)]
    read = [(2 * n + 1, 2 * n + 1) for n in range(MAX_RANGE_ENTRIES)]
    vendors = range(1, MAX_BIT_FIELD_IN_A_URL, 2)
    strings = {
        f"TC string, {len(most):,} range entries, MaxVendorId 65535": tc_string(
            purposes={7}, ranges=True, range_entries=most, max_vendor_id=0xFFFF
        ),
        f"TC string, bit field of {MAX_BIT_FIELD_IN_A_URL:,} vendors": tc_string(
            purposes={7}, vendors=vendors, max_vendor_id=MAX_BIT_FIELD_IN_A_URL
        ),
        f"TC string, {len(read)} range entries, padded to 8 KiB": padded(
            tc_string(purposes={7}, ranges=True, range_entries=read, max_vendor_id=0xFFFF)
        ),
    }
    shapes = [Shape(name, consent_path(fresh_tc(tc)), browser()) for name, tc in strings.items()]
    segments = FRESH + ".AA" * ((LINE_BUDGET - len(consent_path(FRESH))) // 3)
    shapes.append(
        Shape("TC string, 8 KiB of 2-character segments", consent_path(segments), browser())
    )
    for shape in shapes:
        assert len(shape.path) <= LINE_BUDGET, (shape.name, len(shape.path))
    return shapes


def browser(user_agent: str = USER_AGENT, referer: str = REFERER) -> tuple[tuple[str, str], ...]:
    """The headers Chrome sends with an image of another site (wrk adds Host)."""
    chrome = headers(user_agent, ("sec-ch-ua-mobile", "?0"), ("sec-ch-ua-platform", '"Windows"'))
    sent = [(name, value) for name, value in chrome.items() if name not in ("Host", "Referer")]
    return (*sent, ("Referer", referer))


def filler_text(length: int, alphabet: str) -> str:
    rng = random.Random(SEED)
    return "".join(rng.choice(alphabet) for _ in range(length))


def new_agent(alphabet: str) -> str:
    """A 4 KiB user agent of `alphabet`, new every request (its first characters)."""
    return f"{FRESH} {filler_text(FIELD_BUDGET - len(FRESH) - 1, alphabet)}"


NEW_REFERER = f"https://news.example.com/{FRESH}/{'a' * FIELD_BUDGET}"[:FIELD_BUDGET]
PRINTABLE = string.ascii_letters + string.digits + " /;:()._-+,"


def header_shapes() -> list[Shape]:
    """Long and new user agents and referers, and long headers that the prefetch check reads."""
    long_headers = tuple(
        (name, filler_text(FIELD_BUDGET, string.ascii_lowercase + " ;="))
        for name in ("Sec-Purpose", "Purpose", "X-Moz", "Accept-Language")
    )
    chrome = USER_AGENT.replace("131.0.0.0", f"131.0.{FRESH}.0")
    return [
        Shape("User-Agent, a browser's, new version each request", PIXEL, browser(chrome)),
        Shape("User-Agent 4 KiB of letters, new each request", PIXEL, browser(new_agent("a"))),
        Shape(
            "User-Agent 4 KiB of printable text, new each request",
            PIXEL,
            browser(new_agent(PRINTABLE)),
        ),
        Shape("Referer 4 KiB, new each request", PIXEL, browser(referer=NEW_REFERER)),
        Shape("four 4 KiB headers read by the prefetch check", PIXEL, browser() + long_headers),
        Shape(FULL_HEAD, PIXEL, fullest_head(PIXEL)),
        Shape(REFUSED_HEAD, PIXEL, past_the_bound(), status=431, raw=True),
    ]


def query_shapes() -> list[Shape]:
    """64 long query parameters; a signed click with as many parameters, each needing
    percent-encoding in the signed text, and a bad signature; a new uid; a conversion whose
    four parameters are each as long as a line allows, and malformed."""
    value = "%20%C3%A9x" * 12
    params = "".join(f"&p{n:02d}={FRESH if n == 0 else ''}{value}" for n in range(63))
    exp = "&exp=4102444800&kid=" + SIGNING_KEY.kid + "&sig=" + FRESH + "A" * 37
    bang = "!" * ((LINE_BUDGET - len(CLICK) - len(exp)) // 60 - 5)
    click = CLICK + "".join(f"&a{n:02d}={bang}" for n in range(60)) + exp
    uid = f"{PIXEL}&uid={FRESH}{'u' * 194}"
    long = (LINE_BUDGET - len(CONVERSION) - 60) // 4
    conversion = (
        f"{CONVERSION}&click_id={FRESH}{'f' * (long - 6)}&order_id={'o' * long}"
        f"&value={'9' * long}&currency={'E' * long}"
    )
    shapes = [
        Shape("64 query parameters, 120 characters each", PIXEL + params, browser()),
        Shape("signed click, 64 parameters, bad signature", click, browser(), status=302),
        Shape("uid, new each request (USER_ID_KEY)", uid, browser()),
        Shape("conversion, 4 malformed parameters of 2,000 characters, new", conversion, browser()),
    ]
    for shape in shapes:
        assert len(shape.path) <= LINE_BUDGET, (shape.name, len(shape.path))
    return shapes


def fullest_head(path: str, *first: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    """`first`, then 4 KiB headers (the last shorter) up to MAX_HEAD_BYTES with `path`'s
    request line and wrk's Host header."""
    used = len(f"GET {path} HTTP/1.1\r\n") + HOST_LINE_BYTES + len("\r\n")
    used += sum(len(f"{name}: {value}\r\n") for name, value in first)
    padding = filler_text(FIELD_BUDGET, string.ascii_lowercase)
    pads: list[tuple[str, str]] = []
    while (room := MAX_HEAD_BYTES - used - len("X-Pad-00: \r\n")) > 0:
        pads.append((f"X-Pad-{len(pads):02d}", padding[:room]))
        used += len(f"X-Pad-00: {padding[:room]}\r\n")
    return (*first, *pads)


def past_the_bound() -> tuple[tuple[str, str], ...]:
    """MAX_HEADERS headers of 4 KiB (Host counted): each line within its bound, the head six
    times MAX_HEAD_BYTES."""
    padding = filler_text(FIELD_BUDGET, string.ascii_lowercase)
    return tuple((f"X-Pad-{n:02d}", padding) for n in range(MAX_HEADERS - 1))


def combined_shapes() -> list[Shape]:
    """Everything one request can carry at once: the costliest URL of each route, with a new
    4 KiB user agent and a new 4 KiB referer; and the pixel's also with every header a head may
    hold."""
    agent, referer = ("User-Agent", new_agent(PRINTABLE)), ("Referer", NEW_REFERER)
    pixel = next(shape for shape in tc_shapes() if "padded" in shape.name)
    click = next(shape for shape in query_shapes() if shape.status == 302)
    return [
        Shape(f"{pixel.name}, with both 4 KiB headers", pixel.path, (agent, referer)),
        Shape(f"{click.name}, with both 4 KiB headers", click.path, (agent, referer), status=302),
        Shape(
            f"{pixel.name}, with a full head", pixel.path, fullest_head(pixel.path, agent, referer)
        ),
    ]


def reference_shapes() -> list[Shape]:
    """What aiohttp itself costs for the longest URL and headers, all the same every request
    (so every memo of the tracker hits): an 8 KiB `gdpr_consent` without `gdpr` (never decoded,
    never kept), a 4 KiB user agent and a 4 KiB referer. And the hostile click without its
    signature fields, refused at once: the rest of that click's cost (its query, its event)."""
    path = f"{PIXEL}&gdpr_consent={'A' * (LINE_BUDGET - len(PIXEL) - 14)}"
    agent = "Mozilla/5.0 " + "a" * (FIELD_BUDGET - 12)
    referer = f"https://news.example.com/{'a' * (FIELD_BUDGET - 25)}"
    click = next(shape for shape in query_shapes() if shape.status == 302)
    # No exp, kid or sig: refused at once, so what is left is the rest of a click's cost.
    unsigned = click.path.split("&exp=", 1)[0].replace("&a00=", f"&a00={FRESH}", 1)
    return [
        Shape(REFERENCE, path, browser(agent, referer)),
        Shape(UNSIGNED_REFERENCE, unsigned, browser(), status=302),
        Shape(TYPICAL_CLICK, link(), browser(), status=302),
    ]


def shapes() -> list[Shape]:
    return [
        *tc_shapes(),
        *header_shapes(),
        *query_shapes(),
        *combined_shapes(),
        *reference_shapes(),
    ]


# --- running a shape -----------------------------------------------------------------------------


@dataclass
class Tracker:
    pid: int
    port: int
    idle_cpu_per_second: float
    scripts: Path  # where the Lua script and the templates are written

    @property
    def metrics(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


@dataclass
class Run:
    requests: int
    rps: float
    cpu_seconds: float  # the idle process's share already taken off
    bad_answers: int
    observed: dict[str, float]


@dataclass(frozen=True, slots=True)
class Load:
    """What the load generator saw of one run."""

    requests: int
    rps: float
    bad_answers: int


def run_shape(tracker: Tracker, shape: Shape, seconds: int) -> Run:
    """One run of `shape` (wrk, or bench.raw_load for a head too large for it), then the
    shipping of its events; the tracker's CPU over both."""
    before_counts = observe(tracker.metrics)
    started, before = time.monotonic(), cpu_seconds(tracker.pid)
    load = _raw(tracker, shape, seconds) if shape.raw else _wrk_load(tracker, shape, seconds)
    wait_zero(tracker.metrics, "tracker_ship_buffer_depth", DRAIN_TIMEOUT_SECONDS)
    time.sleep(0.3)  # the last batch's answer handled
    spent = cpu_seconds(tracker.pid) - before
    idle = tracker.idle_cpu_per_second * (time.monotonic() - started)
    after_counts = observe(tracker.metrics)
    return Run(
        load.requests,
        load.rps,
        max(0.0, spent - idle),
        load.bad_answers,
        {name: after_counts[name] - before_counts[name] for name in after_counts},
    )


def _wrk_load(tracker: Tracker, shape: Shape, seconds: int) -> Load:
    template = tracker.scripts / "template.txt"
    template.write_text(shape.template())
    result = parse(_wrk(tracker, template, seconds), shape.status)
    requests = sum(result.responses.values())
    return Load(requests, result.requests_per_second, result.non_2xx(shape.status))


def _raw(tracker: Tracker, shape: Shape, seconds: int) -> Load:
    """The shape's requests built here, FRESH made new for each as the Lua script does."""
    lines = [f"{name}: {value}" for name, value in (("Host", "127.0.0.1"), *shape.headers)]
    head = f"GET {shape.path} HTTP/1.1\r\n" + "\r\n".join(lines) + "\r\n\r\n"

    def request(number: int) -> bytes:
        return head.replace(FRESH, f"{number:06d}"[-6:]).encode()

    started = time.monotonic()
    statuses = run_raw_load(tracker.port, request, seconds, CONCURRENCY)
    requests = sum(statuses.values())
    elapsed = time.monotonic() - started
    return Load(requests, requests / elapsed, requests - statuses[shape.status])


def _wrk(tracker: Tracker, template: Path, seconds: int) -> str:
    script = tracker.scripts / "fresh.lua"
    if not script.exists():
        script.write_text(LUA)
    argv = ["wrk", "-t", str(THREADS), "-c", str(CONCURRENCY), "-d", f"{seconds}s"]
    argv += ["--timeout", f"{WRK_TIMEOUT_SECONDS}s", "--latency", "-s", str(script)]
    argv += [f"http://127.0.0.1:{tracker.port}/", "--", str(template)]
    completed = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + WRK_TIMEOUT_SECONDS + HEY_TIMEOUT_MARGIN,
    )
    return completed.stdout


def observe(metrics_url: str) -> dict[str, float]:
    """The tracker's consent decisions and invalid-traffic reasons so far, by name."""
    text = scrape(metrics_url)
    seen = {
        name: metric_value(text, "tracker_consent_requests_total", f'consent="{name}"')
        for name in pb.Consent.keys()  # noqa: SIM118 (a protobuf enum, no __iter__)
    }
    for name in pb.InvalidTraffic.keys():  # noqa: SIM118
        seen[name] = metric_value(text, "tracker_events_by_ivt_total", f'ivt="{name}"')
    return seen


# --- the whole measurement -----------------------------------------------------------------------


# One worker with every check on: consent for our vendor id, uid hashing, signed clicks.
TRACKER_SETTINGS = {
    "TRACKER_WORKERS": "1",
    "TCF_VENDOR_ID": str(VENDOR_ID),
    "USER_ID_KEY": USER_ID_KEY_TEXT,
    "CLICK_SIGNING_KEYS": SIGNING_KEYS_TEXT,
}


def run(
    seconds: int = 3,
    rounds: int = 1,
    only: Sequence[str] | None = None,
    rev: str | None = None,
) -> HostileReport:
    """Start the stack and one tracker (this checkout's, or `tracker/` of git revision `rev`),
    measure the typical pixel and every shape (those whose names contain one of `only`, if
    given) `rounds` times, and stop everything again."""
    chosen = [s for s in shapes() if only is None or any(part in s.name for part in only)]
    ensure_wrk()
    with (
        demo_stack() as stack,
        tempfile.TemporaryDirectory(prefix="hostile-") as scripts,
        tempfile.TemporaryDirectory(prefix="hostile-tree-") as tree,
        canned_kinesis(stack) as canned,
    ):
        commit = export_tracker(rev, Path(tree)) if rev is not None else None
        process = _tracker(stack, canned, Path(tree) if commit else None)
        process.start()
        try:
            time.sleep(1.0)  # subscribed, and its secret of the day fetched
            idle = idle_cpu_per_second([pid_of(process)], 2.0)[0]
            tracker = Tracker(pid_of(process), process.port, idle, Path(scripts))
            runs = _rounds(tracker, chosen, seconds, rounds)
        finally:
            process.stop()
    return _report(runs, Settings(seconds, rounds, round(1e6 * idle, 1), commit))


def _tracker(stack: BenchStack, canned: dict[str, str], tree: Path | None) -> ManagedProcess:
    """This checkout's `tracker serve`, or the one exported to `tree` (run with `python -P`, so
    that the working directory does not come first on the path: as bench.versus does)."""
    if tree is None:
        return stack.tracker({**canned, **TRACKER_SETTINGS})
    port = free_port()
    env = {
        **stack.env,
        **canned,
        **TRACKER_SETTINGS,
        "TRACKER_PORT": str(port),
        "SPILL_DIR": str(stack.spill_dir()),
        "PYTHONPATH": str(tree),
    }
    argv = [sys.executable, "-P", "-m", "tracker", "serve"]
    return ManagedProcess("tracker-other", argv, port, env)


def _rounds(
    tracker: Tracker, chosen: list[Shape], seconds: int, rounds: int
) -> dict[str, list[Run]]:
    """The typical pixel before and after each round of the shapes (and one short warm-up)."""
    typical = Shape(TYPICAL, PIXEL, browser())
    run_shape(tracker, typical, 1)  # first requests: program cache, memos, connections
    runs: dict[str, list[Run]] = {typical.name: []}
    for _ in range(rounds):
        runs[typical.name].append(run_shape(tracker, typical, seconds))
        for shape in chosen:
            runs.setdefault(shape.name, []).append(run_shape(tracker, shape, seconds))
        runs[typical.name].append(run_shape(tracker, typical, seconds))
    return runs


def _report(runs: dict[str, list[Run]], settings: Settings) -> HostileReport:
    typical_runs = runs.pop(TYPICAL)
    typical_us = median(_us_per_request(run) for run in typical_runs)
    typical = _cost(TYPICAL, typical_runs, typical_us, typical_us)
    costs = [
        _cost(name, shape_runs, median(map(_us_per_request, shape_runs)), typical_us)
        for name, shape_runs in runs.items()
    ]
    return HostileReport(typical, costs, settings)


def _us_per_request(run: Run) -> float:
    return 1e6 * run.cpu_seconds / run.requests if run.requests else float("inf")


def _cost(name: str, runs: list[Run], us_per_request: float, typical_us: float) -> ShapeCost:
    observed: dict[str, float] = {}
    for one in runs:
        for key, value in one.observed.items():
            if value:
                observed[key] = observed.get(key, 0.0) + value
    return ShapeCost(
        shape=name,
        requests=sum(one.requests for one in runs),
        requests_per_second=round(median(one.rps for one in runs), 1),
        cpu_us_per_request=round(us_per_request, 1),
        ratio_to_typical=round(us_per_request / typical_us, 2),
        bad_answers=sum(one.bad_answers for one in runs),
        observed=observed,
    )


# --- the command ---------------------------------------------------------------------------------


def table(report: HostileReport) -> str:
    rows = [report.typical, *report.shapes]
    width = max(len(row.shape) for row in rows)
    lines = [f"{'shape':<{width}}  {'us CPU/req':>10}  {'ratio':>6}  {'req/s':>8}  bad"]
    for row in rows:
        lines.append(
            f"{row.shape:<{width}}  {row.cpu_us_per_request:>10.1f}  {row.ratio_to_typical:>6.2f}"
            f"  {row.requests_per_second:>8.0f}  {row.bad_answers}"
        )
    worst = report.worst
    if report.settings.commit is not None:
        lines.append(f"tracker of commit {report.settings.commit}")
    lines.append(
        f"worst: {worst.shape}: {worst.cpu_us_per_request:.1f} us per request,"
        f" {worst.ratio_to_typical:.2f}x the typical pixel's"
        f" {report.typical.cpu_us_per_request:.1f} us"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=3, help="per run, whole seconds (1-30)")
    parser.add_argument("--rounds", type=int, default=1, help="of every shape (1-5)")
    parser.add_argument("--only", action="append", help="shapes whose name contains this")
    parser.add_argument("--rev", help="measure tracker/ of this git revision instead")
    parser.add_argument("--out", type=Path, default=RESULTS / "hostile.json")
    args = parser.parse_args()
    seconds, rounds = max(1, min(args.seconds, 30)), max(1, min(args.rounds, 5))
    report = run(seconds, rounds, args.only, args.rev)
    print(table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
