"""Lambda's Kinesis event, as an event source mapping hands it to a function."""

from __future__ import annotations

import base64
import os
from typing import Any

from consumers.settings import ConsumerSettings

SHARD = "shardId-000000000000"


def sequence(n: int) -> str:
    """A Kinesis-like sequence number; the handlers only keep their order."""
    return f"{49_600_000_000_000_000_000 + n:056d}"


def kinesis_event(
    payloads: list[bytes], settings: ConsumerSettings, stream: str, first: int = 1
) -> dict[str, Any]:
    arn = f"arn:aws:kinesis:{settings.aws.region}:123456789012:stream/{stream}"
    entries = []
    for n, data in enumerate(payloads):
        seq = sequence(first + n)
        entries.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": os.urandom(8).hex(),
                    "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1_700_000_000.123,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{SHARD}:{seq}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": settings.aws.region,
                "eventSourceARN": arn,
            }
        )
    return {"Records": entries}
