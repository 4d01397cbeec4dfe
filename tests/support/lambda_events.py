"""Lambda's Kinesis event, as an event source mapping hands it to a function; and the message
its on-failure destination (an SQS queue) gets for a batch that could not be stored."""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any

from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

SHARD = "shardId-000000000000"
ACCOUNT = "123456789012"


def sequence(n: int) -> str:
    """A Kinesis-like sequence number; the handlers only keep their order."""
    return f"{49_600_000_000_000_000_000 + n:056d}"


def kinesis_event(
    payloads: list[bytes], settings: ConsumerSettings, stream: str, first: int = 1
) -> dict[str, Any]:
    arn = f"arn:aws:kinesis:{settings.aws.region}:{ACCOUNT}:stream/{stream}"
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
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/consumer",
                "awsRegion": settings.aws.region,
                "eventSourceARN": arn,
            }
        )
    return {"Records": entries}


def failure_message(stream: str, shard_id: str, sequences: list[str]) -> str:
    """What Lambda's on-failure destination sends for a Kinesis batch: where it was, not what."""
    return json.dumps(
        {
            "requestContext": {
                "requestId": "c9b8fa9f-5a7f-4e4c-af9c-0c604cde93a5",
                "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:events",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 11,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": "2026-11-14T00:38:06.021Z",
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequences[0],
                "endSequenceNumber": sequences[-1],
                "approximateArrivalOfFirstRecord": "2026-11-14T00:38:04.835Z",
                "approximateArrivalOfLastRecord": "2026-11-14T00:38:05.580Z",
                "batchSize": len(sequences),
                "streamArn": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{stream}",
            },
        }
    )


async def queued(sqs: SQSClient, env: dict[str, str]) -> int:
    """Messages in the queue, visible or not (a kept one is hidden until its timeout ends)."""
    answer = await sqs.get_queue_attributes(
        QueueUrl=env["FAILURE_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    return sum(int(v) for v in answer["Attributes"].values())
