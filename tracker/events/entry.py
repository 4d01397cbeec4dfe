"""An event on its way to Kinesis: the record that the buffer, the shipper and the on-disk log
pass to each other. It lives below all of them, so that none imports another for it."""

from __future__ import annotations

from typing import NamedTuple


class DiskCopy:
    """What holds an entry on disk as well (write-ahead): the on-disk log's segments are these.
    Only the log looks inside; everyone else passes it along."""

    __slots__ = ()


class Entry(NamedTuple):
    partition_key: str
    data: bytes
    events: int = 1  # more than one for a KPL-aggregated record
    # Write-ahead: the log segment that also holds this event. Shipped from memory, it is
    # acknowledged to the log so that the segment can go; it is never written to disk again.
    on_disk: DiskCopy | None = None


# Entry(...) runs a Python-level __new__; tuple.__new__ builds the same Entry in C, at half the
# cost, on the request path.
new_entry = tuple.__new__
