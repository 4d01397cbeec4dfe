"""A snapshot of one process's metrics: taken from a registry, written as JSON, read back
strictly, merged with other processes' snapshots and rendered as Prometheus text.

How values from several processes combine:
- counters, histograms (every bucket, _sum and _count) and summaries: summed, and kept after
  their process exits (`lasting`), so a total never goes down when a worker is replaced;
- gauges named `*_up` (tracker_redis_up, tracker_subscription_up): the minimum, so 1 still means
  "up" and means it for every worker;
- other gauges (cache entries, buffer depth, spill bytes and events: sizes and queue lengths):
  summed over the live processes; a dead process's gauges are dropped with it;
- any other type (none today): the scraped process's own value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

FORMAT_VERSION = 1
# A tracker's snapshot is ~15 KB; far above that is not one of ours.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
LASTING_TYPES = frozenset({"counter", "histogram", "summary"})
KNOWN_TYPES = LASTING_TYPES | {"gauge", "gaugehistogram", "info", "stateset", "unknown"}
UP_SUFFIX = "_up"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
SampleKey = tuple[str, Labels]  # (sample name, labels)


class SnapshotError(ValueError):
    """Bytes that are not a snapshot this module wrote."""


@dataclass(slots=True)
class Family:
    name: str
    type: str
    help: str
    samples: dict[SampleKey, float]

    def copy(self) -> Family:
        return Family(self.name, self.type, self.help, dict(self.samples))


Snapshot = dict[str, Family]  # by family name, in exposition order


def take(collector: Collector) -> Snapshot:
    """Every family the collector (a registry) yields now."""
    snapshot: Snapshot = {}
    for metric in collector.collect():
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
            for sample in metric.samples
        }
        snapshot[metric.name] = Family(metric.name, metric.type, metric.documentation, samples)
    return snapshot


def lasting(snapshot: Snapshot) -> Snapshot:
    """The families that outlive their process: counters, histograms, summaries."""
    return {name: f.copy() for name, f in snapshot.items() if f.type in LASTING_TYPES}


def merge(own: Snapshot, others: Iterable[Snapshot]) -> Snapshot:
    """`own` combined with each of `others`, family by family (see the module's docstring)."""
    merged = {name: family.copy() for name, family in own.items()}
    for snapshot in others:
        for name, family in snapshot.items():
            mine = merged.get(name)
            if mine is None:
                merged[name] = family.copy()
            elif mine.type == family.type:
                _combine_into(mine, family)
    return merged


def _combine_into(mine: Family, other: Family) -> None:
    combine = _combiner(mine)
    if combine is None:
        return
    for key, value in other.samples.items():
        present = mine.samples.get(key)
        mine.samples[key] = value if present is None else combine(present, value)


def _combiner(family: Family) -> Callable[[float, float], float] | None:
    if family.type in LASTING_TYPES or family.type == "gaugehistogram":
        return _add
    if family.type == "gauge":
        return min if family.name.endswith(UP_SUFFIX) else _add
    return None


def _add(a: float, b: float) -> float:
    return a + b


def render(snapshot: Snapshot) -> bytes:
    """Prometheus text format, as generate_latest writes a registry."""
    return generate_latest(_Frozen(snapshot))


class _Frozen(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for family in self._snapshot.values():
            metric = Metric(family.name, family.help, family.type)
            for (name, labels), value in family.samples.items():
                metric.add_sample(name, dict(labels), value)
            yield metric


def encode(snapshot: Snapshot, **extra: Any) -> bytes:
    families = [
        {
            "name": f.name,
            "type": f.type,
            "help": f.help,
            "samples": [[name, dict(labels), value] for (name, labels), value in f.samples.items()],
        }
        for f in snapshot.values()
    ]
    return json.dumps({"version": FORMAT_VERSION, **extra, "families": families}).encode()


def decode(data: bytes) -> tuple[Snapshot, dict[str, Any]]:
    """The snapshot and the document's other top-level keys; SnapshotError unless every part is
    of the shape `encode` writes (names, types, numbers), within MAX_SNAPSHOT_BYTES."""
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"larger than {MAX_SNAPSHOT_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SnapshotError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise SnapshotError(f"not a version {FORMAT_VERSION} snapshot")
    families = document.pop("families", None)
    if not isinstance(families, list):
        raise SnapshotError("families is not a list")
    snapshot: Snapshot = {}
    for item in families:
        family = _family(item)
        snapshot[family.name] = family
    return snapshot, document


def _family(item: object) -> Family:
    if not isinstance(item, dict) or set(item) != {"name", "type", "help", "samples"}:
        raise SnapshotError("a family is not {name, type, help, samples}")
    name, typ, text, samples = item["name"], item["type"], item["help"], item["samples"]
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise SnapshotError("a family name is not a metric name")
    if typ not in KNOWN_TYPES or not isinstance(text, str) or not isinstance(samples, list):
        raise SnapshotError(f"family {name}: bad type, help or samples")
    return Family(name, typ, text, dict(_sample(name, sample) for sample in samples))


def _sample(family: str, item: object) -> tuple[SampleKey, float]:
    if not (isinstance(item, list) and len(item) == 3):
        raise SnapshotError(f"family {family}: a sample is not [name, labels, value]")
    name, labels, value = item
    if not (isinstance(name, str) and name.startswith(family) and _NAME.fullmatch(name)):
        raise SnapshotError(f"family {family}: a sample name is not of the family")
    # NaN and the infinities are valid Prometheus values (json writes and reads them).
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SnapshotError(f"family {family}: a sample value is not a number")
    return (name, _labels(family, labels)), float(value)


def _labels(family: str, labels: object) -> Labels:
    if not isinstance(labels, dict) or not all(
        isinstance(key, str) and _LABEL.fullmatch(key) and isinstance(value, str)
        for key, value in labels.items()
    ):
        raise SnapshotError(f"family {family}: labels are not names to strings")
    return tuple(sorted(labels.items()))
