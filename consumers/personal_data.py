"""What of an event is personal data, and how a kept copy loses it.

Dead letters of events we could decode keep the event for diagnosis, not the person: the
fields below are cleared (the rest says which program, record and outcome failed). Fields a
newer producer added that we do not know are dropped too, since we cannot tell what they hold.
"""

from __future__ import annotations

from tracker.schema.tracking.v1 import tracking_pb2 as pb

PERSONAL_FIELDS = (
    "user_agent",
    "client_ip_anonymized",
    "referer",
    "visitor_id",
    "user_key",
    "params",
)
REDACTED = "[redacted]"
MIN_REDACTED = 3


def scrubbed(event: pb.TrackingEvent) -> bytes:
    """The event without its personal fields, serialized."""
    copy = pb.TrackingEvent()
    copy.CopyFrom(event)
    for name in PERSONAL_FIELDS:
        copy.ClearField(name)
    copy.DiscardUnknownFields()
    return copy.SerializeToString()


def redacted(text: str, event: pb.TrackingEvent) -> str:
    """`text` (an error message about the event) with any of its personal values cut out.

    DynamoDB's refusals do not normally quote attribute values, but an error string is stored
    and logged, so it is not trusted to stay that way.
    """
    values = [getattr(event, name) for name in PERSONAL_FIELDS if name != "params"]
    values += event.params.values()
    # Longest first, so that a value containing another is cut whole; values this short
    # identify nobody, and cutting them would garble the message.
    for value in sorted((v for v in values if len(v) >= MIN_REDACTED), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text
