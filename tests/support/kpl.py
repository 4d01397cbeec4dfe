"""A reference KPL aggregator for tests, built with the generated classes.

Unlike the tracker's own `pack` (one partition key per aggregate, written by hand), it keeps a
table of several partition keys, as other KPL producers do, so the consumers' unpacking is tested
against records they did not write themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tracker.events.kpl import MAGIC, UserRecord
from tracker.schema.kinesis.v1 import aggregation_pb2 as agg


def aggregate(records: Sequence[UserRecord]) -> bytes:
    """Pack user records into one aggregated record's data."""
    message = agg.AggregatedRecord()
    key_index: dict[str, int] = {}
    for record in records:
        index = key_index.setdefault(record.partition_key, len(key_index))
        if index == len(message.partition_key_table):
            message.partition_key_table.append(record.partition_key)
        message.records.add(partition_key_index=index, data=record.data)
    body = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 (the format's checksum)
