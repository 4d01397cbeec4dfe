"""`consumers redrive` as a process: failed batches named in a real (moto) SQS queue, read back
from real kinesalite streams, stored in real moto DynamoDB and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
import redis.asyncio as redis

from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    make_events,
    message_ids,
    provisioned,
    put_records,
    stored_message_ids,
)
from tests.support.lambda_events import failure_message, queued
from tests.support.programs import program
from tests.support.trimming_kinesis_proxy import TrimmingKinesisProxy
from tracker.devstack.processes import free_port

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


class Run(NamedTuple):
    status: int
    summary: dict[str, Any]
    stderr: str


class Placed(NamedTuple):
    """Records put on a stream: their shard and sequence numbers."""

    shard_id: str
    sequences: list[str]


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str, sqs: SQSClient) -> dict[str, str]:
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    queue = await sqs.create_queue(QueueName=f"failures-{os.urandom(4).hex()}")
    env |= {"AWS_ENDPOINT_URL_SQS": moto_url, "FAILURE_QUEUE_URL": queue["QueueUrl"]}
    await provisioned(env)
    return env


async def run_redrive(env: dict[str, str], *args: str) -> Run:
    """`consumers redrive ARGS` as a process; the test's own loop keeps serving meanwhile."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumers",
        "redrive",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(50):
        out, err = await process.communicate()
    assert process.returncode is not None
    summary = json.loads(out) if out.strip() else {}
    return Run(process.returncode, summary, err.decode())


async def place(env: dict[str, str], stream: str, payloads: list[bytes]) -> Placed:
    results = await put_records(env["AWS_ENDPOINT_URL_KINESIS"], stream, payloads)
    (shard_id,) = {r["ShardId"] for r in results}
    return Placed(shard_id, [r["SequenceNumber"] for r in results])


async def send(sqs: SQSClient, env: dict[str, str], *bodies: str) -> None:
    for body in bodies:
        await sqs.send_message(QueueUrl=env["FAILURE_QUEUE_URL"], MessageBody=body)


async def stored(env: dict[str, str]) -> dict[str, int]:
    return dict(await stored_message_ids(env["AWS_ENDPOINT_URL_DYNAMODB"], env["EVENTS_TABLE"]))


@pytest.mark.timeout(120)
async def test_redrive_stores_each_failed_batch_once_and_deletes_its_message(
    env: dict[str, str], sqs: SQSClient, redis_url: str
) -> None:
    events = make_events(10)
    placed = await place(env, env["EVENT_STREAM"], events)
    failed = placed.sequences[2:8]  # the batch Lambda gave up on: records 3 to 8
    updates = [json.dumps(program("shoes", version=v)).encode() for v in (1, 2)]
    programs = await place(env, env["PROGRAM_STREAM"], updates)
    await send(
        sqs,
        env,
        failure_message(env["EVENT_STREAM"], placed.shard_id, failed),
        failure_message(env["PROGRAM_STREAM"], programs.shard_id, programs.sequences),
    )

    run = await run_redrive(env)
    assert run.status == 0, run.stderr
    assert run.summary == {
        "command": "redrive",
        "messages": 2,
        "redriven": 2,
        "kept": 0,
        "records_stored": 8,
        "kept_messages": [],
    }
    assert await stored(env) == dict.fromkeys(message_ids(events[2:8]), 1)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hget("program:shoes", "version") == "2"
    finally:
        await client.aclose()
    assert await queued(sqs, env) == 0

    # The same failure redriven again (a message delivered twice) stores nothing twice.
    await send(sqs, env, failure_message(env["EVENT_STREAM"], placed.shard_id, failed))
    run = await run_redrive(env)
    assert (run.status, run.summary["redriven"]) == (0, 1)
    assert await stored(env) == dict.fromkeys(message_ids(events[2:8]), 1)
    assert await queued(sqs, env) == 0


@pytest.mark.timeout(120)
async def test_records_trimmed_from_the_stream_are_reported_and_the_message_kept(
    env: dict[str, str], sqs: SQSClient, kinesalite_url: str
) -> None:
    events = make_events(6)
    placed = await place(env, env["EVENT_STREAM"], events)
    # Retention has passed over the batch's first two records; the other four are still there.
    proxy = await TrimmingKinesisProxy(kinesalite_url, placed.sequences[2]).start()
    try:
        await send(
            sqs, env, failure_message(env["EVENT_STREAM"], placed.shard_id, placed.sequences)
        )
        run = await run_redrive(env | {"AWS_ENDPOINT_URL_KINESIS": proxy.url})
    finally:
        await proxy.close()
    assert proxy.hidden_records == 2
    assert run.status == 1
    assert (run.summary["redriven"], run.summary["kept"]) == (0, 1)
    (kept,) = run.summary["kept_messages"]
    assert kept["outcome"] == "incomplete"
    assert (kept["records_stored"], kept["records_missing"]) == (4, 2)
    assert "no longer in the stream" in kept["error"]
    assert "message kept" in run.stderr  # said loudly, not only counted
    # what was still there is stored; the message waits for someone to look at it
    assert await stored(env) == dict.fromkeys(message_ids(events[2:]), 1)
    assert await queued(sqs, env) == 1


@pytest.mark.timeout(120)
async def test_a_start_kinesis_does_not_know_is_reported_and_the_message_kept(
    env: dict[str, str], sqs: SQSClient
) -> None:
    placed = await place(env, env["EVENT_STREAM"], make_events(2))
    not_there = str(int(placed.sequences[0]) - 1)
    message = failure_message(env["EVENT_STREAM"], placed.shard_id, [not_there, *placed.sequences])
    await send(sqs, env, message)
    run = await run_redrive(env)
    assert run.status == 1
    (kept,) = run.summary["kept_messages"]
    assert (kept["outcome"], kept["records_stored"]) == ("unreadable", 0)
    assert "InvalidArgumentException" in kept["error"]
    assert await stored(env) == {}
    assert await queued(sqs, env) == 1


@pytest.mark.timeout(120)
async def test_malformed_messages_are_reported_and_the_good_one_still_redriven(
    env: dict[str, str], sqs: SQSClient
) -> None:
    events = make_events(3)
    placed = await place(env, env["EVENT_STREAM"], events)
    good = failure_message(env["EVENT_STREAM"], placed.shard_id, placed.sequences)
    info = json.loads(good)["KinesisBatchInfo"]
    bad_bodies = [
        "not json at all",
        json.dumps({"KinesisBatchInfo": {**info, "startSequenceNumber": "12x"}}),
        json.dumps({"KinesisBatchInfo": {**info, "batchSize": 0}}),
        json.dumps({"DDBStreamBatchInfo": info}),
        json.dumps({"KinesisBatchInfo": info, "padding": "x" * 100_000}),
        failure_message("someone-elses-stream", placed.shard_id, placed.sequences),
    ]
    await send(sqs, env, *bad_bodies, good)
    run = await run_redrive(env)
    assert run.status == 1
    assert (run.summary["messages"], run.summary["redriven"], run.summary["kept"]) == (7, 1, 6)
    errors = sorted((k["outcome"], k["error"]) for k in run.summary["kept_messages"])
    assert errors == [
        ("malformed", "KinesisBatchInfo.batchSize is not in [1, 10000]"),
        ("malformed", "KinesisBatchInfo.startSequenceNumber is missing or malformed"),
        ("malformed", "body is not JSON"),
        ("malformed", "body over 65536 bytes"),
        ("malformed", "no KinesisBatchInfo object"),
        ("unknown_stream", "a stream that neither EVENT_STREAM nor PROGRAM_STREAM names"),
    ]
    assert await stored(env) == dict.fromkeys(message_ids(events), 1)
    assert await queued(sqs, env) == 6


@pytest.mark.timeout(120)
async def test_a_batch_that_cannot_be_stored_keeps_its_message(
    env: dict[str, str], sqs: SQSClient
) -> None:
    placed = await place(env, env["EVENT_STREAM"], make_events(2))
    await send(sqs, env, failure_message(env["EVENT_STREAM"], placed.shard_id, placed.sequences))
    run = await run_redrive(env | {"AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}"})
    assert run.status == 1
    (kept,) = run.summary["kept_messages"]
    assert (kept["outcome"], kept["records_stored"]) == ("failed", 0)
    assert await stored(env) == {}
    assert await queued(sqs, env) == 1


@pytest.mark.timeout(120)
async def test_redrive_handles_at_most_max_messages(env: dict[str, str], sqs: SQSClient) -> None:
    placed = await place(env, env["EVENT_STREAM"], make_events(3))
    await send(
        sqs,
        env,
        *(failure_message(env["EVENT_STREAM"], placed.shard_id, [s]) for s in placed.sequences),
    )
    run = await run_redrive(env, "--max-messages", "2")
    assert (run.status, run.summary["messages"], run.summary["redriven"]) == (0, 2, 2)
    assert len(await stored(env)) == 2
    assert await queued(sqs, env) == 1


@pytest.mark.parametrize(
    ("args", "changes", "error"),
    [
        ((), {"FAILURE_QUEUE_URL": ""}, "FAILURE_QUEUE_URL is not set"),
        ((), {"FAILURE_QUEUE_URL": "not a url"}, "FAILURE_QUEUE_URL"),
        (("--max-messages", "0"), {}, "must be 1 to 10000"),
        (("--max-messages", "many"), {}, "'many' is not a whole number"),
    ],
)
async def test_redrive_refuses_bad_settings_and_arguments_clearly(
    env: dict[str, str], args: tuple[str, ...], changes: dict[str, str], error: str
) -> None:
    run = await run_redrive(env | changes, *args)
    assert run.status == 2
    assert error in run.stderr
    assert run.summary == {}


def test_the_redrive_settings_fall_back_to_the_common_endpoint() -> None:
    settings = ConsumerSettings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    assert settings.redrive.sqs_endpoint == "http://127.0.0.1:4566"
    assert settings.redrive.queue_url is None
    own = ConsumerSettings.from_env(
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_SQS": "http://sqs:9324"}
    )
    assert own.redrive.sqs_endpoint == "http://sqs:9324"
