"""A conversion's own parameters (GET /v1/conversion): checked, bounded, serialized as one part.

| parameter  | accepted                                         | event field              |
| click_id   | ^[0-9a-f]{32}$ (the tracker's own click ids)     | click_id, with consent   |
| order_id   | ^[A-Za-z0-9._:-]{1,64}$                          | order_id                 |
| value      | ^[0-9]+(\\.[0-9]{1,6})?$, below 10^12, ASCII only | value_micros (integers) |
| currency   | ^[A-Z]{3}$                                       | currency                 |

A malformed parameter (empty ones included) is left out of the event and counted by name
(tracker_conversion_params_dropped_total{param}); the answer never changes. A repeated one is
read once, the first, as `query.get` does. When privacy withholds identifiers (CONSENT_DENIED,
Sec-GPC/DNT) the click id is not read at all: the event then cannot be tied to a click (data
minimisation), and the rest is kept.

The part is written by hand, as the event factory writes the message id (no message object per
request): every value is ASCII and at most 64 characters, so each string field is its tag, one
length byte and the text; the tag and length byte are serialized once (the click id's and the
currency's length is fixed, an order id's is one of 64).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tracker.click_ids import CLICK_ID_CHARS
from tracker.memo import BoundedMemo
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from multidict import MultiMapping

CONVERSION_PARAMS = frozenset({"click_id", "order_id", "value", "currency"})
# The order of the dropped-parameter counters, and their label values.
PARAM_NAMES = ("click_id", "order_id", "value", "currency")
CLICK_ID, ORDER_ID, VALUE, CURRENCY = range(len(PARAM_NAMES))

# What each parameter must be (docs/openapi.yaml says the same). Measured: checking by length
# and alphabet instead of a match saves nothing worth a second definition.
MAX_ORDER_ID, CURRENCY_CHARS = 64, 3
CLICK_ID_TEXT = re.compile(rf"[0-9a-f]{{{CLICK_ID_CHARS}}}")
ORDER_ID_TEXT = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_ORDER_ID}}}")
CURRENCY_TEXT = re.compile(rf"[A-Z]{{{CURRENCY_CHARS}}}")
# Leading zeros are a decimal's own business; what is below 10^12 has at most 12 digits after
# them. The explicit [0-9] ranges take ASCII digits only (\d would take any script's).
VALUE_TEXT = re.compile(r"0*([0-9]{1,12})(?:\.([0-9]{1,6}))?")
MAX_VALUE_TEXT = 64  # longer is refused before the pattern runs
MICROS = 1_000_000
MAX_VALUE_MICROS = 10**12 * MICROS - 1


# Each field's tag as upb writes it: a message of that field alone, less the value (and for a
# string, its length byte).
TrackingEvent = pb.TrackingEvent
CLICK_ID_TAG = TrackingEvent(click_id="0").SerializeToString()[:-2]
ORDER_ID_TAG = TrackingEvent(order_id="0").SerializeToString()[:-2]
VALUE_TAG = TrackingEvent(value_micros=1).SerializeToString()[:-1]
CURRENCY_TAG = TrackingEvent(currency="0").SerializeToString()[:-2]
# What precedes each string field's text: its tag and length byte, by length for an order id.
CLICK_ID_HEAD = CLICK_ID_TAG + bytes((CLICK_ID_CHARS,))
ORDER_ID_HEADS = tuple(ORDER_ID_TAG + bytes((length,)) for length in range(MAX_ORDER_ID + 1))
CURRENCY_HEAD = CURRENCY_TAG + bytes((CURRENCY_CHARS,))
# A shop sells in a handful of currencies (ISO 4217 has fewer than 200): their fields are kept,
# well-formed codes only, so that a code is checked and serialized once (~0.15 us a conversion).
MAX_CURRENCIES = 1_000


def value_micros(text: str) -> int | None:
    """`text` as millionths, exactly; None unless it is a non-negative decimal of ASCII digits
    with at most six fraction digits, below 10^12 (no sign, exponent, spaces, nan or inf)."""
    if len(text) > MAX_VALUE_TEXT:
        return None
    match = VALUE_TEXT.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match.groups()
    if fraction is None:
        return int(whole) * MICROS  # ASCII digits only: int() sees nothing else
    # The digits as one number of millionths: one int() instead of two, a product and a sum
    # (0.63 -> 0.56 us a value, measured).
    return int(whole + fraction.ljust(6, "0"))


def varint(number: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    out = []  # a list, then bytes(): 0.34 -> 0.30 us for a value's, against a bytearray
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


class ConversionFields:
    """Parses a conversion's parameters into its event's part; counts each one left out."""

    def __init__(self) -> None:
        self.dropped = [0] * len(PARAM_NAMES)
        self._currencies: BoundedMemo[str, bytes] = BoundedMemo(MAX_CURRENCIES)

    def serialize(self, query: MultiMapping[str], withheld: bool) -> bytes:
        """Fields 23-26 of the event, in field order, each only when well formed."""
        # The string fields inline, each one's head serialized once: the whole part costs 2.0 us
        # instead of 2.7 with a call per field (a conversion with every parameter, in process;
        # about twice that in a tracker under load, bench/route_cost.py).
        get = query.get
        dropped = self.dropped
        part = b""
        text = None if withheld else get("click_id")
        if text is not None:
            if CLICK_ID_TEXT.fullmatch(text) is None:
                dropped[CLICK_ID] += 1
            else:
                part = CLICK_ID_HEAD + text.encode()
        text = get("order_id")
        if text is not None:
            if ORDER_ID_TEXT.fullmatch(text) is None:
                dropped[ORDER_ID] += 1
            else:
                part += ORDER_ID_HEADS[len(text)] + text.encode()
        text = get("value")
        if text is not None:
            part += self._value(text)
        text = get("currency")
        if text is not None:
            part += self._currencies.get(text) or self._currency(text)
        return part

    def _value(self, text: str) -> bytes:
        """The value's field, or b"" (counted when malformed)."""
        micros = value_micros(text)
        if micros is None:
            self.dropped[VALUE] += 1
            return b""
        # proto3 writes no zero: 0 reads back as absent either way.
        return VALUE_TAG + varint(micros) if micros else b""

    def _currency(self, text: str) -> bytes:
        """The field of a currency not seen before, remembered, or b"" (counted) when malformed
        (never remembered: each is counted)."""
        if CURRENCY_TEXT.fullmatch(text) is None:
            self.dropped[CURRENCY] += 1
            return b""
        return self._currencies.remember(text, CURRENCY_HEAD + text.encode())

    def counts(self) -> dict[tuple[str, ...], float]:
        """The dropped-parameter counters by label, for the metrics registry."""
        return {(name,): count for name, count in zip(PARAM_NAMES, self.dropped, strict=True)}
