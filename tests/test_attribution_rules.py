"""The pure parts of attribution: the contract's table at its edges, the report counters a
decision adds, and the attribution table's records read back as written."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.attribution import records
from consumers.attribution.rules import (
    ATTRIBUTED,
    CLICK_AFTER_CONVERSION_MS,
    DAY_MS,
    DUPLICATE,
    NO_CLICK_ID,
    NO_CONSENT,
    OUTSIDE_WINDOW,
    PENDING,
    PROGRAM_MISMATCH,
    UNKNOWN_CLICK,
    Click,
    Conversion,
    Decision,
    dedupe_key,
    judged,
    report_counts,
    without_click,
)

CLICK_MS = 1_780_000_000_000


def conversion(at_ms: int = CLICK_MS, **fields: object) -> Conversion:
    base: dict[str, object] = {
        "message_id": "m" * 32,
        "program_id": "shop",
        "timestamp_ms": at_ms,
        "click_id": "c" * 32,
        "order_id": "",
        "value_micros": 0,
        "currency": "",
        "consented": True,
    }
    base.update(fields)
    return Conversion(**base)  # type: ignore[arg-type]


CLICK = Click("shop", CLICK_MS, True, 7)


def test_the_window_and_the_clock_allowance_are_inclusive() -> None:
    assert judged(conversion(CLICK_MS + 7 * DAY_MS), CLICK) == ATTRIBUTED
    assert judged(conversion(CLICK_MS + 7 * DAY_MS + 1), CLICK) == OUTSIDE_WINDOW
    assert judged(conversion(CLICK_MS - CLICK_AFTER_CONVERSION_MS), CLICK) == ATTRIBUTED
    assert judged(conversion(CLICK_MS - CLICK_AFTER_CONVERSION_MS - 1), CLICK) == OUTSIDE_WINDOW
    assert judged(conversion(program_id="other"), CLICK) == PROGRAM_MISMATCH


def test_consent_is_looked_at_before_the_click_id() -> None:
    assert without_click(conversion(consented=False)) == NO_CONSENT
    assert without_click(conversion(consented=False, click_id="")) == NO_CONSENT
    assert without_click(conversion(click_id="")) == NO_CLICK_ID
    assert without_click(conversion()) is None


def test_an_order_id_is_the_dedupe_key_else_the_click() -> None:
    assert dedupe_key(conversion(order_id="A-1")) == "order#shop#A-1"
    assert dedupe_key(conversion()) == f"click#shop#{'c' * 32}"


def test_what_each_decision_adds_to_the_report() -> None:
    sale = conversion(value_micros=49_900_000, currency="EUR")
    assert report_counts(sale, Decision(ATTRIBUTED, CLICK)) == {
        "conversions": 1,
        "revenue.EUR": 49_900_000,
    }
    crawled = CLICK._replace(billable=False)
    assert report_counts(sale, Decision(ATTRIBUTED, crawled)) == {"unattributed_conversions": 1}
    for attribution in (NO_CLICK_ID, NO_CONSENT, PROGRAM_MISMATCH, OUTSIDE_WINDOW, UNKNOWN_CLICK):
        assert report_counts(sale, Decision(attribution)) == {"unattributed_conversions": 1}
    assert report_counts(sale, Decision(DUPLICATE)) == {}
    assert report_counts(sale, Decision(PENDING)) == {}
    assert report_counts(conversion(), Decision(ATTRIBUTED, CLICK)) == {"conversions": 1}


ids = st.text("0123456789abcdef", min_size=32, max_size=32)


@given(ids, ids, st.text("ABC-_.:9", max_size=64), st.integers(0, 10**18 - 1))
def test_a_parked_record_reads_back_as_written(
    message_id: str, click_id: str, order_id: str, value: int
) -> None:
    parked = records.Parked(
        conversion(message_id=message_id, click_id=click_id, order_id=order_id, value_micros=value),
        ("shop#3", f"{CLICK_MS:013d}#{message_id}"),
        "shop",
        CLICK_MS + 5,
    )
    item = records.parked_record(parked, 900)
    assert records.parked_of(item) == parked
    assert item["pk"]["S"] == records.parked_partition(message_id)
