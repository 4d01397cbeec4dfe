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

from tracker.events.entry import Entry
from tracker.schema.kinesis.v1 import aggregation_pb2 as agg

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16
# What the KPL uses by default: two 25 KB PUT payload units per record.
MAX_AGGREGATE_BYTES = 51_200


class UserRecord(NamedTuple):
    partition_key: str
    data: bytes


class AggregationError(ValueError):
    """The record claims to be aggregated (magic and digest match) but cannot be unpacked."""


def pack(entries: Sequence[Entry], max_bytes: int = MAX_AGGREGATE_BYTES) -> list[Entry]:
    """Aggregate entries into records of at most ~max_bytes, each keyed by its first entry's
    partition key (random message ids, so records still spread over the shards).

    The protobuf is written by hand: every user record takes partition key index 0, so a record
    is `08 00 1a <len> <data>` and the aggregate is those records behind the one-key table. This
    costs well under a microsecond per event, where building message objects costs several.
    """
    packed: list[Entry] = []
    start = 0
    while start < len(entries):
        key = entries[start].partition_key.encode()
        parts = [b"\x0a" + _varint(len(key)) + key]
        size = len(parts[0])
        end = start
        while end < len(entries) and (
            end == start or size + len(entries[end].data) + 12 <= max_bytes
        ):
            data = entries[end].data
            record = b"\x08\x00\x1a" + _varint(len(data)) + data
            parts.append(b"\x1a" + _varint(len(record)) + record)
            size += len(parts[-1])
            end += 1
        body = b"".join(parts)
        digest = hashlib.md5(body).digest()  # noqa: S324 (the format's checksum)
        events = sum(e.events for e in entries[start:end])
        packed.append(Entry(entries[start].partition_key, MAGIC + body + digest, events))
        start = end
    return packed


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


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
