"""The KPL aggregated record format: many user records in one Kinesis record.

    data = MAGIC | AggregatedRecord (protobuf, proto/kinesis/v1) | MD5(AggregatedRecord)

A record without the magic prefix, or whose digest does not match, is a plain record: that is how
KPL consumers tell the two apart, and it lets aggregated and plain records share a stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from google.protobuf.message import DecodeError

from tracker.schema.kinesis.v1 import aggregation_pb2 as agg

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16


class UserRecord(NamedTuple):
    partition_key: str
    data: bytes


class AggregationError(ValueError):
    """The record claims to be aggregated (magic and digest match) but cannot be unpacked."""


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
    return MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 (the format's checksum, not security)


def is_aggregated(data: bytes) -> bool:
    if len(data) <= len(MAGIC) + DIGEST_SIZE or not data.startswith(MAGIC):
        return False
    body = data[len(MAGIC) : -DIGEST_SIZE]
    return hashlib.md5(body).digest() == data[-DIGEST_SIZE:]  # noqa: S324


def deaggregate(data: bytes, partition_key: str) -> list[UserRecord]:
    """The user records inside `data`; a plain record comes back as itself."""
    if not is_aggregated(data):
        return [UserRecord(partition_key, data)]
    message = agg.AggregatedRecord()
    try:
        message.ParseFromString(data[len(MAGIC) : -DIGEST_SIZE])
    except DecodeError as exc:
        raise AggregationError(f"aggregated record does not parse: {exc}") from None
    keys = message.partition_key_table
    unpacked: list[UserRecord] = []
    for record in message.records:
        if record.partition_key_index >= len(keys):
            raise AggregationError("aggregated record points past its partition key table")
        unpacked.append(UserRecord(keys[record.partition_key_index], record.data))
    return unpacked
