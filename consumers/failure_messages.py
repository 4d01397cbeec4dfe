"""Lambda's on-failure destination message for a Kinesis batch, read strictly.

The message holds only where the failed batch lies in the stream, not its records:

    {"requestContext": {"requestId", "functionArn", "condition", "approximateInvokeCount"},
     "responseContext": {"statusCode", "executedVersion", "functionError"},
     "version": "1.0", "timestamp": "...",
     "KinesisBatchInfo": {"shardId", "startSequenceNumber", "endSequenceNumber",
                          "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord",
                          "batchSize", "streamArn"}}

Only `KinesisBatchInfo` matters here. `endSequenceNumber` may be missing (then `batchSize`
records from the start are the batch); everything else is checked, bounded, or refused.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

MAX_BODY_BYTES = 64 * 1024  # a real message is under 1 KB
MAX_BATCH_SIZE = 10_000  # the largest batch an event source mapping hands a function
_SEQUENCE = re.compile(r"[0-9]{1,128}")
_SHARD = re.compile(r"shardId-[0-9]{1,20}")
# arn:aws:kinesis:REGION:ACCOUNT:stream/NAME (partitions such as aws-cn included)
_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:kinesis:[a-z0-9-]{1,32}:[0-9]{12}:stream/([A-Za-z0-9._-]{1,128})"
)


class MalformedMessageError(ValueError):
    """The message is not a Kinesis on-failure record; the text says what is wrong."""


class FailedBatch(NamedTuple):
    stream: str  # the stream's name, from streamArn
    shard_id: str
    start: str  # sequence number of the batch's first record
    end: str | None  # of its last record, when the message says
    size: int  # records in the batch
    condition: str  # why Lambda gave up: RetryAttemptsExhausted, RecordAgeExceeded, ...


def parse_failure_message(body: str) -> FailedBatch:
    if len(body.encode()) > MAX_BODY_BYTES:
        raise MalformedMessageError(f"body over {MAX_BODY_BYTES} bytes")
    try:
        message = json.loads(body)
    except ValueError:
        raise MalformedMessageError("body is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("KinesisBatchInfo"), dict):
        raise MalformedMessageError("no KinesisBatchInfo object")
    info: dict[str, Any] = message["KinesisBatchInfo"]
    start = _text(info, "startSequenceNumber", _SEQUENCE)
    end = _text(info, "endSequenceNumber", _SEQUENCE) if "endSequenceNumber" in info else None
    if end is not None and int(end) < int(start):
        raise MalformedMessageError("endSequenceNumber is before startSequenceNumber")
    context = message.get("requestContext")
    condition = context.get("condition") if isinstance(context, dict) else None
    return FailedBatch(
        stream=_stream_name(info),
        shard_id=_text(info, "shardId", _SHARD),
        start=start,
        end=end,
        size=_batch_size(info),
        condition=condition[:64] if isinstance(condition, str) else "unknown",
    )


def _stream_name(info: dict[str, Any]) -> str:
    arn = info.get("streamArn")
    match = _STREAM_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise MalformedMessageError("KinesisBatchInfo.streamArn is missing or malformed")
    return match.group(1)


def _text(info: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = info.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise MalformedMessageError(f"KinesisBatchInfo.{key} is missing or malformed")
    return value


def _batch_size(info: dict[str, Any]) -> int:
    size = info.get("batchSize")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise MalformedMessageError(f"KinesisBatchInfo.batchSize is not in [1, {MAX_BATCH_SIZE}]")
    return size
