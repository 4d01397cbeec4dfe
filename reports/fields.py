"""The names of a report row's counters (docs/reporting.md) and how money is shown.

The InvalidTraffic and Validation names come from the event schema itself, so a reason or an
outcome added there appears in every report (as zeros until counted) without a change here.
"""

from __future__ import annotations

from tracker.schema.tracking.v1 import tracking_pb2

TRAFFIC_NAMES = (
    "impressions",
    "clicks",
    "events",
    "billable_impressions",
    "billable_clicks",
)
IVT_NAMES = tuple(
    value.name
    for value in tracking_pb2.InvalidTraffic.DESCRIPTOR.values
    if value.name != "IVT_NONE"
)
VALIDATION_NAMES = tuple(
    value.name
    for value in tracking_pb2.Validation.DESCRIPTOR.values
    if value.name != "VALIDATION_UNSPECIFIED"
)
CONVERSION_NAMES = ("conversions", "unattributed_conversions")
# Every counter a row holds, by its name in the rollups' `counts`.
COUNTER_NAMES = (
    *TRAFFIC_NAMES,
    *(f"ivt.{name}" for name in IVT_NAMES),
    *(f"validation.{name}" for name in VALIDATION_NAMES),
    *CONVERSION_NAMES,
)


def money(micros: int) -> str:
    """Integer micros as a plain decimal string, exactly: no exponent, no trailing zeros.

    12_345_000 -> "12.345", 100_000_000 -> "100", 1 -> "0.000001", 0 -> "0".
    """
    # Integer arithmetic: exact at any size, where Decimal would round past its precision.
    whole, fraction = divmod(abs(micros), 1_000_000)
    digits = f"{fraction:06d}".rstrip("0")
    sign = "-" if micros < 0 else ""
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"
