"""Building one TrackingEvent from a request and its validation outcome.

Everything taken from the request is bounded here: lengths are cut, parameters are counted and
filtered, so that no client can make an event (or a Kinesis record) large.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from tracker.conversions import CONVERSION_PARAMS
from tracker.memo import BoundedMemo
from tracker.programs.model import Program
from tracker.request_facts import RequestFacts
from tracker.schema.tracking.v1 import tracking_pb2 as pb

MAX_HEADER_TEXT = 512
MAX_PARAMS = 16
MAX_PARAM_KEY = 32
MAX_PARAM_VALUE = 256
# All kept values together: a campaign's parameters (utm_*, sub ids) take a few hundred
# characters; sixteen values of 256 would make every such event four times as large, and what
# an event weighs it costs again in shipping (docs/benchmarks.md, "Hostile requests").
MAX_PARAMS_TEXT = 1024
# Read by the tracker itself (the privacy ones, consent string and advertiser's user id, must never
# reach `params` in clear; the signature ones are link mechanics, not campaign data).
RESERVED_PARAMS = frozenset(
    {"program", "customer", "gdpr", "gdpr_consent", "uid", "exp", "kid", "sig"}
)
# A conversion's own parameters are fields of its event (or left out when malformed, and then
# not kept in clear in `params` either).
CONVERSION_RESERVED_PARAMS = RESERVED_PARAMS | CONVERSION_PARAMS
PARAM_KEY = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_PARAM_KEY}}}")

TrackingEvent = pb.TrackingEvent
CONVERSION: int = pb.CONVERSION
MAX_PREFIXES = 100_000


IDS_PER_DRAW = 256


class _MessageIds:
    """128 random bits as hex per id, cut from one os.urandom call per IDS_PER_DRAW ids: a
    getrandom syscall per request cost more than everything else in making the id (and uuid4()
    ten times that)."""

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0
        # A forked child must not hand out the ids its parent still holds.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._hex = ""
        self._at = 0

    def take(self) -> str:
        at = self._at
        if at == len(self._hex):
            self._hex = os.urandom(16 * IDS_PER_DRAW).hex()
            at = 0
        self._at = at + 32
        return self._hex[at : at + 32]


new_message_id = _MessageIds().take
# Field 8's tag and length, for an id of exactly 32 ASCII characters, as upb writes them.
MESSAGE_ID_FIELD = TrackingEvent(message_id="0" * 32).SerializeToString()[:-32]


def is_billable(validation: int, ivt: int) -> bool:
    """Worth billing: a valid program, and nothing says the traffic is invalid."""
    return validation == pb.OK and ivt == pb.IVT_NONE


def extra_params(
    items: Iterable[tuple[str, str]], reserved: frozenset[str] = RESERVED_PARAMS
) -> dict[str, str]:
    """The query parameters worth keeping: well-formed keys, none of `reserved`, bounded count
    and lengths, and values of MAX_PARAMS_TEXT characters in all (the last one kept is cut to
    what is left)."""
    kept: dict[str, str] = {}
    left = MAX_PARAMS_TEXT
    for key, value in items:
        if key in reserved or key in kept or not PARAM_KEY.fullmatch(key):
            continue
        kept[key] = cut = value[: min(MAX_PARAM_VALUE, left)]
        left -= len(cut)
        if len(kept) == MAX_PARAMS or not left:
            break
    return kept


class EventFactory:
    """Builds serialized events from parts that upb serializes once and this concatenates:
    protobuf parses concatenated messages as one, merged, and each field here is in exactly one
    part. The program's fields are serialized once per program, the client's come serialized
    from tracker.privacy.client_fields (once per distinct client), the outcome once per
    (event type, validation, invalid-traffic reason), the timestamp once per millisecond, a
    click's attribution window once per value (tracker.click_ids); only the message id, and
    the customer, parameters and a conversion's fields when a request has them, are new per
    request. Building one upb
    message per request instead cost four times as much (measured, docs/benchmarks.md)."""

    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id[:MAX_HEADER_TEXT]
        # program id -> (the Program it was built from, or None for an unknown id; its bytes)
        self._prefixes: BoundedMemo[str, tuple[Program | None, bytes]] = BoundedMemo(MAX_PREFIXES)
        # (event type, validation, ivt) -> its fields serialized: the handler picks one per
        # request and passes it to build().
        self.outcomes: Mapping[tuple[int, int, int], bytes] = {
            (event_type, validation, ivt): TrackingEvent(
                event_type=event_type,  # type: ignore[arg-type]
                validation=validation,  # type: ignore[arg-type]
                is_valid=validation == pb.OK,
                ivt=ivt,  # type: ignore[arg-type]
                billable=is_billable(validation, ivt),
            ).SerializeToString()
            for event_type in pb.EventType.values()
            for validation in pb.Validation.values()
            for ivt in pb.InvalidTraffic.values()
        }
        self._stamp_ms = -1
        self._stamp = b""

    def build(self, outcome: bytes, facts: RequestFacts) -> tuple[str, bytes]:
        """(message_id, serialized event). `outcome` is one of `outcomes`; `facts` holds the
        program, the time and the client's serialized fields."""
        message_id = facts.message_id or new_message_id()  # a click id is drawn earlier
        timestamp_ms = facts.timestamp_ms
        if timestamp_ms != self._stamp_ms:
            self._stamp = TrackingEvent(timestamp_ms=timestamp_ms).SerializeToString()
            self._stamp_ms = timestamp_ms
        parts = [
            self._prefix(facts.program_id, facts.program),
            facts.client,
            outcome,
            MESSAGE_ID_FIELD,
            message_id.encode(),
            self._stamp,
            facts.fields,  # b"" but for conversions and clicks given a click id
        ]
        if facts.customer:
            parts.append(TrackingEvent(requested_customer_id=facts.customer).SerializeToString())
        query = facts.query
        reserved = RESERVED_PARAMS if facts.event_type != CONVERSION else CONVERSION_RESERVED_PARAMS
        if not reserved.issuperset(query.keys()):  # the common pixel has none
            params = extra_params(query.items(), reserved)
            if params:
                parts.append(TrackingEvent(params=params).SerializeToString())
        return message_id, b"".join(parts)

    def _prefix(self, program_id: str, program: Program | None) -> bytes:
        cached = self._prefixes.get(program_id)
        if cached is not None and cached[0] is program:
            return cached[1]
        prefix = TrackingEvent(programid=program_id, tracker_instance=self._instance_id)
        if program is not None:
            prefix.checksum = program.checksum
            prefix.customer_id = program.customer_id
            prefix.program_name = program.program_name
            prefix.customer_name = program.customer_name
        return self._prefixes.remember(program_id, (program, prefix.SerializeToString()))[1]
