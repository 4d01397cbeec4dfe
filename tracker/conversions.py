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
length byte and the text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from multidict import MultiMapping

CONVERSION_PARAMS = frozenset({"click_id", "order_id", "value", "currency"})
# The order of the dropped-parameter counters, and their label values.
PARAM_NAMES = ("click_id", "order_id", "value", "currency")
CLICK_ID, ORDER_ID, VALUE, CURRENCY = range(len(PARAM_NAMES))

# What each parameter must be (docs/openapi.yaml says the same). Measured: checking by length
# and alphabet instead of a match saves nothing worth a second definition.
CLICK_ID_TEXT = re.compile(r"[0-9a-f]{32}")
ORDER_ID_TEXT = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CURRENCY_TEXT = re.compile(r"[A-Z]{3}")
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


def value_micros(text: str) -> int | None:
    """`text` as millionths, exactly; None unless it is a non-negative decimal of ASCII digits
    with at most six fraction digits, below 10^12 (no sign, exponent, spaces, nan or inf)."""
    if len(text) > MAX_VALUE_TEXT:
        return None
    match = VALUE_TEXT.fullmatch(text)
    if match is None:
        return None
    whole, fraction = match.groups()
    micros = int(whole) * MICROS  # ASCII digits only: int() sees nothing else
    return micros + int(fraction.ljust(6, "0")) if fraction is not None else micros


def varint(number: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


class ConversionFields:
    """Parses a conversion's parameters into its event's part; counts each one left out."""

    def __init__(self) -> None:
        self.dropped = [0] * len(PARAM_NAMES)

    def serialize(self, query: MultiMapping[str], withheld: bool) -> bytes:
        """Fields 23-26 of the event, in field order, each only when well formed."""
        part = b"" if withheld else self._text(query, CLICK_ID, CLICK_ID_TEXT, CLICK_ID_TAG)
        part += self._text(query, ORDER_ID, ORDER_ID_TEXT, ORDER_ID_TAG)
        value = query.get("value")
        if value is not None:
            micros = value_micros(value)
            if micros is None:
                self.dropped[VALUE] += 1
            elif micros:  # proto3 writes no zero: 0 reads back as absent either way
                part += VALUE_TAG + varint(micros)
        return part + self._text(query, CURRENCY, CURRENCY_TEXT, CURRENCY_TAG)

    def _text(
        self, query: MultiMapping[str], slot: int, pattern: re.Pattern[str], tag: bytes
    ) -> bytes:
        """The string field of parameter PARAM_NAMES[slot], or b"" (counted when malformed)."""
        text = query.get(PARAM_NAMES[slot])
        if text is None:
            return b""
        if pattern.fullmatch(text) is None:
            self.dropped[slot] += 1
            return b""
        return tag + bytes((len(text),)) + text.encode()

    def counts(self) -> dict[tuple[str, ...], float]:
        """The dropped-parameter counters by label, for the metrics registry."""
        return {(name,): count for name, count in zip(PARAM_NAMES, self.dropped, strict=True)}
