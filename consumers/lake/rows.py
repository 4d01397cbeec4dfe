"""Stream records -> Arrow: the events of one shard's records, in stream order, as columns.

Each record may be a KPL aggregate of several events; each event row remembers its record's
sequence number so that a commit can leave out what another worker committed already (a prefix,
because one shard's rows are added in stream order). Records that are no TrackingEvent are
skipped and counted: `consumers events` keeps them in the dead-letter table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from consumers.event_items import EventFormatError, decode_event
from consumers.lake.schema import EVENT_TIME, Column, arrow_schema, event_columns
from consumers.records import StreamRecord
from tracker.events.kpl import AggregationError, deaggregate
from tracker.schema.tracking.v1 import tracking_pb2 as pb

_COLUMNS = event_columns()
_ARROW = arrow_schema()
_MICROS_PER_MILLI = 1000


class EventRows:
    """Growing columns of decoded events, plus each row's record sequence number."""

    def __init__(self) -> None:
        self._values: list[list[Any]] = [[] for _ in _COLUMNS]
        self._readers = [_reader(column) for column in _COLUMNS]
        self.sequences: list[int] = []
        self.skipped = 0  # records that were no event

    def __len__(self) -> int:
        return len(self.sequences)

    def add_records(self, records: Iterable[StreamRecord]) -> None:
        for record in records:
            sequence = int(record.sequence_number)
            try:
                for user_record in deaggregate(record.data, record.partition_key):
                    self.add_event(decode_event(user_record.data), sequence)
            except (AggregationError, EventFormatError):
                self.skipped += 1

    def add_event(self, event: pb.TrackingEvent, sequence: int) -> None:
        for values, read in zip(self._values, self._readers, strict=True):
            values.append(read(event))
        self.sequences.append(sequence)

    def values(self, name: str) -> list[Any]:
        """One column's values so far."""
        return self._values[_INDEX[name]]

    def first_after(self, position: int | None) -> int:
        """The index of the first row whose record comes after `position` (a committed sequence
        number): rows before it are stored already."""
        if position is None:
            return 0
        low, high = 0, len(self.sequences)
        while low < high:
            middle = (low + high) // 2
            if self.sequences[middle] <= position:
                low = middle + 1
            else:
                high = middle
        return low

    def to_arrow(self, start: int = 0) -> pa.Table:
        arrays = [
            pa.array(values[start:] if start else values, type=_ARROW.field(column.name).type)
            for values, column in zip(self._values, _COLUMNS, strict=True)
        ]
        millis = arrays[_TIMESTAMP_INDEX]
        micros = pc.multiply(millis, pa.scalar(_MICROS_PER_MILLI, pa.int64()))
        arrays.append(micros.cast(_ARROW.field(EVENT_TIME).type))
        return pa.Table.from_arrays(arrays, schema=_ARROW)


_INDEX = {column.name: i for i, column in enumerate(_COLUMNS)}
_TIMESTAMP_INDEX = _INDEX["timestamp_ms"]


def _reader(column: Column) -> Callable[[pb.TrackingEvent], Any]:
    """How one column's value is read off an event: enums by name, empty strings as null."""
    name = column.name
    if column.kind == "map":
        return lambda event: list(getattr(event, name).items())
    if column.kind == "enum":
        names = column.enum_names
        return lambda event: _enum_name(names, getattr(event, name))
    if _ARROW.field(name).type == pa.string():
        return lambda event: getattr(event, name) or None
    return lambda event: getattr(event, name)


def _enum_name(names: tuple[str, ...], number: int) -> str:
    # A number this build does not know (a newer tracker) keeps its digits rather than vanish.
    return names[number] if 0 <= number < len(names) else str(number)


def extend(first: EventRows, then: EventRows) -> None:
    """Append `then`'s rows to `first` (a failed commit's rows before those read since)."""
    for values, more in zip(first._values, then._values, strict=True):
        values.extend(more)
    first.sequences.extend(then.sequences)
    first.skipped += then.skipped
