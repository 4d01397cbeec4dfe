"""An on-disk event log as a stopped tracker leaves it, written straight into a SPILL_DIR with the
project's framing and file layout: a `part-<id>/` directory with a `lock` file nobody holds and
~4 MiB segments of framed TrackingEvents from the tracker's own event factory, each with a unique
message id as its partition key (bench/replay.py drains it)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from bench.demo_programs import demo_programs
from tracker.events.builder import EventFactory
from tracker.events.entry import Entry
from tracker.events.spill.files import LOCK_NAME, PART_PREFIX, segment_path
from tracker.events.spill.framing import encode
from tracker.events.spill.log import SEGMENT_BYTES
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb

INSTANCE = "ip-10-0-3-17.ec2.internal-7"  # hostname-pid, as TRACKER_INSTANCE_ID defaults
START_MS = 1_767_225_600_000  # 2026-01-01
NEXT_MS_SHARE = 0.3  # of events that fall in a new millisecond: a few events per millisecond
CLICK_SHARE = 0.1
# (user agent, referer, anonymized address): what browsers send, some without a referer
CLIENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "https://news.example.com/articles/2026/spring-sale",
        "203.0.113.0",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
        "",
        "198.51.100.0",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "https://blog.example.org/",
        "2001:db8:85a3::",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        "https://m.example.net/feed",
        "192.0.2.0",
    ),
)
# The extra query parameters of a request, beyond its program: most have none.
PARAMS: tuple[dict[str, str], ...] = (
    {},
    {},
    {},
    {"utm_campaign": "spring", "utm_medium": "display"},
)
NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())  # the builder reads none


@dataclass(frozen=True, slots=True)
class BuiltLog:
    events: int
    bytes: int
    segments: int
    mean_event_bytes: float  # the serialized TrackingEvent (what Kinesis stores)
    seconds: float


def build_log(spill_dir: Path, target_bytes: int, seed: int = 7) -> BuiltLog:
    """A part of `target_bytes` of framed events (whole records, at least one) in `spill_dir`."""
    started = time.monotonic()
    part = spill_dir / f"{PART_PREFIX}{uuid.uuid4().hex[:16]}"
    part.mkdir(parents=True)
    (part / LOCK_NAME).touch(mode=0o600)  # its owner is gone: nobody holds the flock
    make = _event_maker(random.Random(seed))
    events = total = data_bytes = 0
    segment: list[bytes] = []
    seq, size = 1, 0
    while total < target_bytes:
        key, data = make()
        record = encode(Entry(key, data))
        if size + len(record) > SEGMENT_BYTES and segment:
            segment_path(part, seq).write_bytes(b"".join(segment))
            seq, segment, size = seq + 1, [], 0
        segment.append(record)
        size += len(record)
        total += len(record)
        data_bytes += len(data)
        events += 1
    segment_path(part, seq).write_bytes(b"".join(segment))
    return BuiltLog(
        events, total, seq, round(data_bytes / events, 1), round(time.monotonic() - started, 1)
    )


def _event_maker(rng: random.Random) -> Callable[[], tuple[str, bytes]]:
    """(message id, serialized TrackingEvent) as the tracker builds them for real requests: a
    valid demo program, one of CLIENTS, a query with one of PARAMS."""
    valid = [p for p in demo_programs() if p.valid and p.valid_until is None]
    # Each program's queries made once: the builder reads them, and making them is no part of
    # what the log holds.
    queries = {
        p.program_id: tuple(
            MultiDictProxy(MultiDict({"program": p.program_id, **params})) for params in PARAMS
        )
        for p in valid
    }
    factory = EventFactory(INSTANCE)
    clock = [START_MS]

    def make() -> tuple[str, bytes]:
        program = rng.choice(valid)
        user_agent, referer, address = rng.choice(CLIENTS)
        clock[0] += rng.random() < NEXT_MS_SHARE
        event_type = pb.CLICK if rng.random() < CLICK_SHARE else pb.IMPRESSION
        client = pb.TrackingEvent(
            user_agent=user_agent, referer=referer, client_ip_anonymized=address
        ).SerializeToString()
        query = rng.choice(queries[program.program_id])
        facts = RequestFacts(query, NO_HEADERS, event_type, program.program_id)
        facts.program, facts.timestamp_ms, facts.client, facts.customer = (
            program,
            clock[0],
            client,
            0,
        )
        return factory.build(factory.outcomes[event_type, pb.OK, pb.IVT_NONE], facts)

    return make
