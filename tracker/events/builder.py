"""Building one TrackingEvent from a request and its validation outcome.

Everything taken from the request is bounded here: lengths are cut, parameters are counted and
filtered, so that no client can make an event (or a Kinesis record) large.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from tracker.programs.model import Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb

MAX_HEADER_TEXT = 512
MAX_PARAMS = 16
MAX_PARAM_KEY = 32
MAX_PARAM_VALUE = 256
RESERVED_PARAMS = frozenset({"program", "customer"})
_PARAM_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,32}")

TrackingEvent = pb.TrackingEvent


def new_message_id() -> str:
    """128 random bits as hex: unique per request and ~10x cheaper than uuid4()."""
    return os.urandom(16).hex()


def extra_params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The query parameters worth keeping: well-formed keys, bounded count and lengths."""
    kept: dict[str, str] = {}
    for key, value in items:
        if key in RESERVED_PARAMS or key in kept or not _PARAM_KEY.fullmatch(key):
            continue
        kept[key] = value[:MAX_PARAM_VALUE]
        if len(kept) == MAX_PARAMS:
            break
    return kept


class EventFactory:
    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id[:MAX_HEADER_TEXT]

    def build(  # noqa: PLR0913 (keyword-only, one per event field)
        self,
        *,
        event_type: int,
        validation: int,
        program_id: str,
        program: Program | None,
        timestamp_ms: int,
        user_agent: str,
        referer: str,
        client_ip: str,
        requested_customer_id: int | None,
        params: dict[str, str],
    ) -> tuple[str, bytes]:
        """(message_id, serialized event)."""
        message_id = new_message_id()
        event = TrackingEvent(
            programid=program_id,
            message_id=message_id,
            event_type=event_type,  # type: ignore[arg-type]
            validation=validation,  # type: ignore[arg-type]
            is_valid=validation == pb.OK,
            timestamp_ms=timestamp_ms,
            user_agent=user_agent[:MAX_HEADER_TEXT],
            referer=referer[:MAX_HEADER_TEXT],
            client_ip_anonymized=client_ip,
            tracker_instance=self._instance_id,
            requested_customer_id=requested_customer_id or 0,
            params=params,
        )
        if program is not None:
            event.checksum = program.checksum
            event.customer_id = program.customer_id
            event.program_name = program.program_name
            event.customer_name = program.customer_name
        return message_id, event.SerializeToString()
