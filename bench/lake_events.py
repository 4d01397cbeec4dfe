"""The lake bench's canned stream: a busy tracker fleet's events, made in memory.

The traffic mix is the bench's (bench/event_sizes.py's kinds and shares: 99 % pixels, 1 %
clicks; 70 % without consent signals, 20 % with consent and a uid, 10 % GPC), each kind's event
built once by the tracker's own EventFactory (bench/rollup_cost.py's `templates`), then given
per event what varies in real traffic:

- a message id of its own (32 random hex digits) and a time: RATE events a second, evenly;
- one of PROGRAMS programs (CUSTOMERS customers, their names and checksums as long as a real
  campaign's), the busiest programs getting most of the traffic (weights 1/rank);
- a visitor drawn from the day's audience at EVENTS_PER_VISITOR events each (so within one
  commit almost every visitor id is new, as at this rate): the visitor's daily
  pseudonym (32 hex digits, per customer as the tracker makes it), address (/24 kept) and
  browser (one of USER_AGENTS distinct user agents), and with consent a user key of their own;
- the page it was shown on, one of SITES sites' ARTICLES articles (the origin alone for GPC,
  as the privacy step leaves it), and params as an ad tag carries them (site, creative, and
  for clicks the signed link's campaign);
- the tracker task that accepted it, one of TRACKERS.

Event fields the kind leaves empty (GPC: no user agent, address, visitor) stay empty. The stream
has the bench stack's 2 shards; a shard's events of one second make one batch of KPL-aggregated
records (bench/event_sizes.py: at this rate plain records would need 20 shards), packed by the
tracker's own `pack`, each record's sequence number higher than the last.

`local_table` makes the table they are committed to as `consumers init` makes it (the lake's
own properties), in a SQLite catalog and file warehouse of the caller's directory.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyiceberg.table import Table
from pyiceberg.utils.config import Config

from bench.event_sizes import Kind
from bench.rollup_cost import FIRST_SEQUENCE, SHARDS, templates
from bench.user_agents import browser_agents
from consumers.lake.catalog import CATALOG_NAME, ensure_table, open_catalog
from consumers.records import StreamRecord
from consumers.settings import LakeSettings
from tracker.events.entry import Entry
from tracker.events.kpl import pack
from tracker.schema.tracking.v1 import tracking_pb2 as pb

RATE = 20_000  # events a second: the bar for one lake worker
EVENTS_PER_VISITOR = 10  # a day
CUSTOMERS = 12
PROGRAMS = 36  # three per customer
USER_AGENTS = 40
SITES = 30
ARTICLES = 60  # per site
CREATIVES = 8  # per program
TRACKERS = 8  # tracker tasks
SEED = 20261207
# 2026-12-07 10:00:00 UTC: the bench's events all fall in one hour partition unless told
START_MS = 1_796_637_600_000
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class ProgramFields:
    programid: str
    checksum: str
    customer_id: int
    program_name: str
    customer_name: str
    campaign: str


def programs(count: int = PROGRAMS) -> list[ProgramFields]:
    """`count` programs of CUSTOMERS customers, named as real campaigns are."""
    seasons = ("spring", "summer", "autumn", "winter", "blackfriday", "xmas")
    goods = ("shoes", "jackets", "phones", "laptops", "sofas", "watches", "bikes", "tyres")
    made = []
    for number in range(count):
        customer = number % CUSTOMERS
        season, good = seasons[number % len(seasons)], goods[number % len(goods)]
        made.append(
            ProgramFields(
                programid=f"cust{customer:02d}-2026-{season}-{good}-{number:02d}",
                checksum=hashlib.md5(f"{number}".encode(), usedforsecurity=False).hexdigest(),
                customer_id=100_000 + customer,
                program_name=f"{season.title()} {good.title()} Sale 2026 - EU display #{number}",
                customer_name=f"Customer {customer:02d} Retail GmbH",
                campaign=f"c-2026{number:04d}",
            )
        )
    return made


def referers(sites: int = SITES, articles: int = ARTICLES) -> list[str]:
    """Article pages as the privacy step leaves them (no query)."""
    return [
        f"https://www.site{site:02d}-news.example/{section}/2026/12/article-{article:04d}"
        for site in range(sites)
        for article, section in zip(
            range(articles), ("politics", "sport", "tech", "travel") * articles, strict=False
        )
    ]


@dataclass
class Visitors:
    """The day's audience: visitor `n`'s pseudonym, address, browser and user key."""

    audience: int
    agents: list[str] = field(default_factory=lambda: browser_agents(USER_AGENTS))

    def visitor_id(self, number: int, customer_id: int) -> str:
        # A bijection of (number, customer) onto 128 bits, as distinct as the tracker's hashes
        mixed = (number * 1_000_003 + customer_id) * 0x9E3779B97F4A7C15F39CC0605CEDC835
        return f"{mixed % 2**128:032x}"

    def address(self, number: int) -> str:
        mixed = number * 0x9E3779B1 % 2**24
        return f"{mixed >> 16 | 64}.{mixed >> 8 & 255}.{mixed & 255}.0"

    def agent(self, number: int) -> str:
        return self.agents[number * 7919 % len(self.agents)]

    def user_key(self, number: int) -> str:
        return f"{number * 0xD1B54A32D192ED03A3C1D49A9F1E3B5 % 2**128:032x}"


class CannedStream:
    """The stream's events at RATE a second from START_MS, as one-second batches per shard."""

    def __init__(self, rate: int = RATE, start_ms: int = START_MS, seed: int = SEED) -> None:
        self.rate = rate
        self.clock_ms = start_ms
        self.rng = random.Random(seed)
        # Serialized: each batch parses its own, since a message keeps every value ever set on
        # it (protobuf's arena) until it is freed.
        self.kinds: list[tuple[Kind, bytes]] = [
            (kind, event.SerializeToString()) for kind, event in templates()
        ]
        self.programs = programs()
        self.referers = referers()
        self.trackers = [f"ip-10-0-{12 + n}-{34 + 7 * n}.ec2.internal-7" for n in range(TRACKERS)]
        self.visitors = Visitors(rate * SECONDS_PER_DAY // EVENTS_PER_VISITOR)
        self.sequences = dict.fromkeys(SHARDS, 0)
        self.events = 0  # made so far

    def batches(self, events: int) -> Iterator[tuple[str, list[StreamRecord]]]:
        """`events` more events, a second of one shard's share at a time, the shards alternating."""
        per_shard = self.rate // len(SHARDS)
        left = events
        while left > 0:
            for shard in SHARDS:
                count = min(per_shard, left)
                if count:
                    yield shard, self._records(shard, self._events(count))
                left -= count
            self.clock_ms += 1000

    def _events(self, count: int) -> list[bytes]:
        """`count` events of one shard within the current second."""
        rng = self.rng
        kinds = [(kind, pb.TrackingEvent.FromString(data)) for kind, data in self.kinds]
        chosen = rng.choices(kinds, [kind.share for kind, _ in kinds], k=count)
        shown = rng.choices(self.programs, [1 / (rank + 1) for rank in range(PROGRAMS)], k=count)
        made = []
        for n, ((_, event), program) in enumerate(zip(chosen, shown, strict=True)):
            self._fill(event, program)
            event.timestamp_ms = self.clock_ms + n * 1000 // count
            made.append(event.SerializeToString())
        self.events += count
        return made

    def _fill(self, event: pb.TrackingEvent, program: ProgramFields) -> None:
        """One event's program, people and page (the kind decides which fields it has)."""
        rng = self.rng
        event.message_id = rng.randbytes(16).hex()
        event.programid, event.checksum = program.programid, program.checksum
        event.customer_id, event.program_name = program.customer_id, program.program_name
        event.customer_name = program.customer_name
        event.tracker_instance = rng.choice(self.trackers)
        page = rng.choice(self.referers)
        site = page.split("/")[2]
        event.referer = page if event.referer.count("/") > 2 else f"https://{site}"
        event.params.clear()
        event.params["site"] = site
        event.params["creative"] = f"cr-{program.customer_id % 1000:03d}{rng.randrange(CREATIVES)}"
        if event.event_type == pb.CLICK:
            event.params["campaign"] = program.campaign
        if event.visitor_id:
            visitor = rng.randrange(self.visitors.audience)
            event.visitor_id = self.visitors.visitor_id(visitor, program.customer_id)
            event.client_ip_anonymized = self.visitors.address(visitor)
            event.user_agent = self.visitors.agent(visitor)
            if event.user_key:
                event.user_key = self.visitors.user_key(visitor)

    def _records(self, shard: str, events: list[bytes]) -> list[StreamRecord]:
        """The events as KPL-aggregated records, each with the next sequence number."""
        entries = [Entry(f"{n:032x}", data) for n, data in enumerate(events)]
        records = []
        for entry in pack(entries):
            self.sequences[shard] += 1
            sequence = f"{FIRST_SEQUENCE + self.sequences[shard]:056d}"
            records.append(StreamRecord(sequence, entry.partition_key, entry.data))
        return records


def local_table(directory: Path, commit_seconds: float = 60.0) -> Table:
    """The events table in a SQLite catalog and file warehouse under `directory`, made as
    `consumers init` makes it."""
    if Config().get_catalog_config(CATALOG_NAME):
        raise RuntimeError(
            f"a pyiceberg catalog {CATALOG_NAME!r} is configured: the bench "
            "measures a local table only, unset it for the run"
        )
    settings = LakeSettings(directory, "adtracker.events", commit_seconds, 395)
    return ensure_table(open_catalog(settings), settings)
