"""What attribution a conversion gets, from its own fields and its click's. Pure: no I/O.

The values and their conditions are the contract's ("Conversions"). Consent is looked at first:
a conversion without consent carries no click id (the tracker drops it), and NO_CONSENT says
why better than NO_CLICK_ID would.
"""

from __future__ import annotations

from typing import NamedTuple

from tracker.schema.tracking.v1 import tracking_pb2 as pb

ATTRIBUTED = "ATTRIBUTED"
NO_CLICK_ID = "NO_CLICK_ID"
NO_CONSENT = "NO_CONSENT"
PROGRAM_MISMATCH = "PROGRAM_MISMATCH"
OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
DUPLICATE = "DUPLICATE"
UNKNOWN_CLICK = "UNKNOWN_CLICK"
PENDING = "PENDING"

# Trackers' clocks differ a little: a click stamped up to this much after its conversion is
# still the conversion's click.
CLICK_AFTER_CONVERSION_MS = 5 * 60 * 1000
DAY_MS = 86_400_000
# The report counters a decided conversion adds to (docs/reporting.md).
CONVERSIONS = "conversions"
UNATTRIBUTED = "unattributed_conversions"
REVENUE_PREFIX = "revenue."


class Click(NamedTuple):
    """What attribution needs of a stored click (one with a click id: validation OK)."""

    program_id: str
    timestamp_ms: int
    billable: bool
    window_days: int


class Conversion(NamedTuple):
    """A conversion event as attribution sees it."""

    message_id: str
    program_id: str
    timestamp_ms: int
    click_id: str  # "" when none
    order_id: str  # "" when none
    value_micros: int
    currency: str  # "" when none
    consented: bool  # neither CONSENT_DENIED nor GPC/DNT


class Decision(NamedTuple):
    attribution: str
    click: Click | None = None  # the click, when ATTRIBUTED


def conversion_of(event: pb.TrackingEvent) -> Conversion:
    consented = event.consent != pb.CONSENT_DENIED and not event.gpc
    return Conversion(
        event.message_id,
        event.programid,
        event.timestamp_ms,
        event.click_id,
        event.order_id,
        event.value_micros,
        event.currency,
        consented,
    )


def without_click(conversion: Conversion) -> str | None:
    """The attribution that needs no click (NO_CONSENT, NO_CLICK_ID), or None: look it up."""
    if not conversion.consented:
        return NO_CONSENT
    if not conversion.click_id:
        return NO_CLICK_ID
    return None


def judged(conversion: Conversion, click: Click) -> str:
    """ATTRIBUTED (before the duplicate check), PROGRAM_MISMATCH or OUTSIDE_WINDOW."""
    if click.program_id != conversion.program_id:
        return PROGRAM_MISMATCH
    after_click = conversion.timestamp_ms - click.timestamp_ms
    if not -CLICK_AFTER_CONVERSION_MS <= after_click <= click.window_days * DAY_MS:
        return OUTSIDE_WINDOW
    return ATTRIBUTED


def dedupe_key(conversion: Conversion) -> str:
    """What two conversions share when they are one: the program's order id, else the click."""
    if conversion.order_id:
        return f"order#{conversion.program_id}#{conversion.order_id}"
    return f"click#{conversion.program_id}#{conversion.click_id}"


def report_counts(conversion: Conversion, decision: Decision) -> dict[str, int]:
    """What the decision adds to the conversion's rollup row: `conversions` and its revenue for
    one attributed to a billable click, `unattributed_conversions` for any other final one but
    DUPLICATE, nothing while PENDING."""
    attribution = decision.attribution
    if attribution in (PENDING, DUPLICATE):
        return {}
    if attribution == ATTRIBUTED and decision.click is not None and decision.click.billable:
        counts = {CONVERSIONS: 1}
        if conversion.currency and conversion.value_micros:
            counts[REVENUE_PREFIX + conversion.currency] = conversion.value_micros
        return counts
    return {UNATTRIBUTED: 1}
