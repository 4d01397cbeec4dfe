"""The lake's columns, derived from the TrackingEvent message so that a new proto field becomes a
new column (docs/lake.md, "Schema").

Every field keeps its proto name; enums are stored as their names (readable in any engine and
stable if numbers were ever reused), `params` as a map, and `event_time` (from `timestamp_ms`) is
the timestamp the table is partitioned by, one partition per hour.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
from google.protobuf.descriptor import FieldDescriptor
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import HourTransform
from pyiceberg.types import (
    BooleanType,
    IcebergType,
    IntegerType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from tracker.schema.tracking.v1 import tracking_pb2 as pb

EVENT_TIME = "event_time"
HOUR_PARTITION = "event_hour"
# Partition field ids start at 1000 by Iceberg's convention.
_FIRST_PARTITION_FIELD_ID = 1000

_SCALARS: dict[int, IcebergType] = {
    FieldDescriptor.TYPE_STRING: StringType(),
    FieldDescriptor.TYPE_ENUM: StringType(),
    FieldDescriptor.TYPE_BOOL: BooleanType(),
    FieldDescriptor.TYPE_INT32: IntegerType(),
    FieldDescriptor.TYPE_INT64: LongType(),
}


class Column(NamedTuple):
    """One proto field as a column: how the rows builder reads it."""

    name: str
    kind: str  # "scalar", "enum" or "map"
    enum_names: tuple[str, ...]  # by number, for enums; numbers past the end keep their digits


def proto_fields() -> list[FieldDescriptor]:
    """The TrackingEvent fields in field-number order."""
    fields: list[FieldDescriptor] = list(pb.TrackingEvent.DESCRIPTOR.fields)  # type: ignore[arg-type]
    return sorted(fields, key=lambda field: field.number)


def event_columns() -> tuple[Column, ...]:
    columns = []
    for field in proto_fields():
        if _is_map(field):
            columns.append(Column(field.name, "map", ()))
        elif field.type == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None  # an enum field has its type
            values = field.enum_type.values
            names = [""] * (max(v.number for v in values) + 1)
            for value in values:
                names[value.number] = value.name
            columns.append(Column(field.name, "enum", tuple(names)))
        elif field.type in _SCALARS:
            columns.append(Column(field.name, "scalar", ()))
        else:
            raise TypeError(f"no lake column type for proto field {field.name}")
    return tuple(columns)


def iceberg_schema() -> Schema:
    """All columns optional: a column added later reads as null in older rows."""
    fields: list[NestedField] = []
    next_id = 1
    for field in proto_fields():
        if _is_map(field):
            kind: IcebergType = MapType(next_id + 1, StringType(), next_id + 2, StringType(), False)
            fields.append(NestedField(next_id, field.name, kind, required=False))
            next_id += 3
        else:
            fields.append(NestedField(next_id, field.name, _SCALARS[field.type], required=False))
            next_id += 1
    fields.append(NestedField(next_id, EVENT_TIME, TimestamptzType(), required=False))
    return Schema(*fields)


def partition_spec(schema: Schema) -> PartitionSpec:
    source = schema.find_field(EVENT_TIME).field_id
    return PartitionSpec(
        PartitionField(source, _FIRST_PARTITION_FIELD_ID, HourTransform(), HOUR_PARTITION)
    )


def arrow_schema() -> pa.Schema:
    """The Arrow schema of appended batches: Iceberg's types, plain (not large) strings."""
    fields = []
    for field in schema_to_pyarrow(iceberg_schema(), include_field_ids=False):
        kind = field.type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_map(kind):
            kind = pa.map_(pa.string(), pa.string())
        fields.append(pa.field(field.name, kind, nullable=True))
    return pa.schema(fields)


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry
