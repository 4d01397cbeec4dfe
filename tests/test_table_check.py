"""Consumers refuse tables this version does not write: a missing one, or one of another key (an
events table still keyed by `program_id`, say), checked before the first record is read. Against
a real moto server and kinesalite: the workers and redrive as processes, the Lambda handlers in
process and under awslambdaric.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis.asyncio as redis
from aiobotocore.session import get_session
from aiohttp import web

from consumers.lambda_handlers import ENVIRONMENT, events_handler, programs_handler
from consumers.provision import IncompatibleTableError, provision
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    create_bare_events_table,
    make_events,
    message_ids,
    poll_until,
    provisioned,
    put_records,
    scan_table,
    stored_message_ids,
)
from tests.support.kinesis import read_records
from tests.support.lambda_events import failure_message, kinesis_event, queued
from tests.support.lambda_runtime_api import RuntimeApi, awslambdaric
from tests.support.programs import program
from tests.support.proxy import EmulatorProxy

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_sqs import SQSClient

pytestmark = pytest.mark.timeout(120)

NO_REDIS = "redis://127.0.0.1:1/0"  # nothing before the table check talks to Redis
POISON = b"\xff not a tracking event"  # read, it would be dead-lettered


def old_key_line(command: str, table: str) -> str:
    return (
        f"consumers {command}: table {table} has the key (program_id HASH, event_key RANGE), "
        "this version needs (program_bucket HASH, event_key RANGE): give it a new table name "
        "(see docs/deploy.md)"
    )


def missing_line(command: str, table: str) -> str:
    return (
        f"consumers {command}: table {table} does not exist: create it with `consumers init` "
        "or the data stack (see docs/deploy.md)"
    )


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str) -> dict[str, str]:
    """Streams and every table as `consumers init` makes them; tests then spoil one."""
    environment = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    await provisioned(environment)
    return environment


@pytest.fixture
async def dynamodb(moto_url: str) -> AsyncIterator[DynamoDBClient]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


async def give_old_key(dynamodb: DynamoDBClient, table: str) -> None:
    """The events table as the release before the buckets made it: keyed by program_id."""
    await dynamodb.delete_table(TableName=table)
    await create_bare_events_table(dynamodb, table, "program_id")


async def give_other_key(dynamodb: DynamoDBClient, table: str) -> None:
    await dynamodb.delete_table(TableName=table)
    await dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


async def nothing_written(dynamodb: DynamoDBClient, env: dict[str, str]) -> None:
    """No event stored, no dead letter, no lease (so no checkpoint), in the tables there are."""
    for table in ("EVENTS_TABLE", "DEAD_LETTER_TABLE", "LEASE_TABLE"):
        try:
            page = await dynamodb.scan(TableName=env[table], ConsistentRead=True)
        except dynamodb.exceptions.ResourceNotFoundException:
            continue  # the table a test deleted
        assert page["Items"] == [], table


def consumers(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`consumers ARGS` as a process; a worker that wrongly starts fails the test by its timeout."""
    return subprocess.run(
        [sys.executable, "-m", "consumers", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# the workers


async def test_the_events_worker_refuses_an_old_key_events_table_before_reading(
    env: dict[str, str], dynamodb: DynamoDBClient
) -> None:
    await give_old_key(dynamodb, env["EVENTS_TABLE"])
    payloads = [*make_events(5), POISON]
    await put_records(env["AWS_ENDPOINT_URL_KINESIS"], env["EVENT_STREAM"], payloads)
    worker = await asyncio.to_thread(consumers, env, "events")
    assert worker.returncode == 1
    assert worker.stderr.splitlines() == [old_key_line("events", env["EVENTS_TABLE"])]
    await nothing_written(dynamodb, env)
    # The records wait in the stream for a worker on the right table.
    stream = await read_records(env["AWS_ENDPOINT_URL_KINESIS"], env["EVENT_STREAM"])
    assert stream == payloads


@pytest.mark.parametrize("missing", ["EVENTS_TABLE", "DEAD_LETTER_TABLE", "LEASE_TABLE"])
async def test_the_events_worker_refuses_a_missing_table(
    env: dict[str, str], dynamodb: DynamoDBClient, missing: str
) -> None:
    await dynamodb.delete_table(TableName=env[missing])
    await put_records(env["AWS_ENDPOINT_URL_KINESIS"], env["EVENT_STREAM"], [POISON])
    worker = await asyncio.to_thread(consumers, env, "events")
    assert worker.returncode == 1
    assert worker.stderr.splitlines() == [missing_line("events", env[missing])]
    await nothing_written(dynamodb, env)


async def test_the_programs_worker_refuses_a_dead_letter_table_of_another_key(
    env: dict[str, str], dynamodb: DynamoDBClient
) -> None:
    await give_other_key(dynamodb, env["DEAD_LETTER_TABLE"])
    await put_records(env["AWS_ENDPOINT_URL_KINESIS"], env["PROGRAM_STREAM"], [b"{not json"])
    worker = await asyncio.to_thread(consumers, env, "programs")
    assert worker.returncode == 1
    assert worker.stderr.splitlines() == [
        f"consumers programs: table {env['DEAD_LETTER_TABLE']} has the key (id HASH), this "
        "version needs (record_id HASH): give it a new table name (see docs/deploy.md)"
    ]
    await nothing_written(dynamodb, env)


async def test_the_programs_worker_needs_no_events_or_privacy_table(
    env: dict[str, str], dynamodb: DynamoDBClient, moto_url: str
) -> None:
    for table in (env["EVENTS_TABLE"], env["PRIVACY_TABLE"]):
        await dynamodb.delete_table(TableName=table)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumers",
        "programs",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        # Started: it takes the program stream's lease.
        await poll_until(lambda: scan_table(moto_url, env["LEASE_TABLE"]), bool, what="a lease")
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
            worker.terminate()
        async with asyncio.timeout(30):
            _, stderr = await worker.communicate()
    assert (worker.returncode, stderr) == (0, b"")


# the Lambda handlers


@pytest.fixture
async def lambda_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The handlers' environment; each test starts like a new execution environment."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield
    await asyncio.to_thread(ENVIRONMENT.close)


class CountingProxy(EmulatorProxy):
    """Counts moto's DynamoDB calls by operation on their way through."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.calls: Counter[str] = Counter()

    async def handle(self, request: web.Request, target: str, body: bytes) -> web.Response:
        self.calls[target.rsplit(".", 1)[-1]] += 1
        return await self.forward(request, body)


@pytest.mark.usefixtures("lambda_env")
async def test_the_events_handler_fails_on_an_old_key_table_and_stores_after_the_fix(
    env: dict[str, str], dynamodb: DynamoDBClient
) -> None:
    await give_old_key(dynamodb, env["EVENTS_TABLE"])
    settings = ConsumerSettings.from_env(env)
    payloads = make_events(4)
    event = kinesis_event([*payloads, POISON], settings, settings.event_stream)
    for _ in range(2):  # each invocation checks again: a refusal is not remembered
        with pytest.raises(IncompatibleTableError, match=settings.events_table):
            await asyncio.to_thread(events_handler, event, None)
    await nothing_written(dynamodb, env)

    # Lambda retries the batch; meanwhile the table was put right.
    await dynamodb.delete_table(TableName=settings.events_table)
    await provision(settings)
    assert await asyncio.to_thread(events_handler, event, None) == {"batchItemFailures": []}
    endpoint = env["AWS_ENDPOINT_URL_DYNAMODB"]
    stored = await stored_message_ids(endpoint, settings.events_table)
    assert stored == dict.fromkeys(message_ids(payloads), 1)
    assert len(await scan_table(endpoint, settings.dead_letter_table)) == 1


@pytest.mark.usefixtures("lambda_env")
async def test_the_handlers_check_their_tables_once_not_per_invocation(
    env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await CountingProxy(moto_url).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        settings = ConsumerSettings.from_env(env)
        for n in range(3):
            event = kinesis_event(make_events(3), settings, settings.event_stream, 10 * n)
            assert await asyncio.to_thread(events_handler, event, None) == {"batchItemFailures": []}
    finally:
        await proxy.close()
    # the events, privacy, rollup, attribution and dead-letter tables
    assert proxy.calls["DescribeTable"] == 5
    assert proxy.calls["BatchWriteItem"] >= 3


@pytest.mark.usefixtures("lambda_env")
async def test_the_programs_handler_needs_no_events_table(
    env: dict[str, str], dynamodb: DynamoDBClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    await dynamodb.delete_table(TableName=env["EVENTS_TABLE"])
    settings = ConsumerSettings.from_env(env)
    shoes = json.dumps(program("shoes", version=2)).encode()
    event = kinesis_event([shoes], settings, settings.program_stream)
    assert await asyncio.to_thread(programs_handler, event, None) == {"batchItemFailures": []}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hget("program:shoes", "version") == "2"
    finally:
        await client.aclose()


@pytest.fixture
def runtime_log(env: dict[str, str], runtime_api: RuntimeApi, tmp_path: Path) -> Iterator[Path]:
    """The events handler under awslambdaric, as the image's Lambda target runs it; its output."""
    log = tmp_path / "runtime.log"
    with awslambdaric("consumers.lambda_handlers.events_handler", env, runtime_api, log):
        yield log


async def test_under_awslambdaric_the_invocation_fails_with_the_line_logged(
    env: dict[str, str], dynamodb: DynamoDBClient, runtime_api: RuntimeApi, runtime_log: Path
) -> None:
    await give_old_key(dynamodb, env["EVENTS_TABLE"])
    settings = ConsumerSettings.from_env(env)
    event = kinesis_event(make_events(3), settings, settings.event_stream)
    answer = await runtime_api.invoke(event)
    line = old_key_line("events", env["EVENTS_TABLE"]).removeprefix("consumers events: ")
    assert answer.kind == "error"
    assert (answer.body["errorType"], answer.body["errorMessage"]) == (
        "IncompatibleTableError",
        line,
    )
    # Our JSON line says why, beside the runtime's own report of the error.
    lines = (await asyncio.to_thread(runtime_log.read_text)).splitlines()
    logged = [json.loads(text) for text in lines if text.startswith("{")]
    ours = [(entry["level"], entry.get("kind")) for entry in logged if entry["msg"] == line]
    assert ours == [("ERROR", "events")]
    await nothing_written(dynamodb, env)


# redrive


@pytest.fixture
async def redrive_env(env: dict[str, str], sqs: SQSClient, moto_url: str) -> dict[str, str]:
    queue = await sqs.create_queue(QueueName=f"failures-{os.urandom(4).hex()}")
    return env | {"AWS_ENDPOINT_URL_SQS": moto_url, "FAILURE_QUEUE_URL": queue["QueueUrl"]}


async def queue_failed_batch(
    sqs: SQSClient, env: dict[str, str], stream: str, payloads: list[bytes]
) -> None:
    """Put the records on the stream, and the on-failure message naming them on the queue."""
    placed = await put_records(env["AWS_ENDPOINT_URL_KINESIS"], stream, payloads)
    (shard_id,) = {record["ShardId"] for record in placed}
    message = failure_message(stream, shard_id, [record["SequenceNumber"] for record in placed])
    await sqs.send_message(QueueUrl=env["FAILURE_QUEUE_URL"], MessageBody=message)


async def test_redrive_refuses_an_old_key_events_table_and_keeps_the_message(
    redrive_env: dict[str, str], dynamodb: DynamoDBClient, sqs: SQSClient
) -> None:
    env = redrive_env
    await give_old_key(dynamodb, env["EVENTS_TABLE"])
    await queue_failed_batch(sqs, env, env["EVENT_STREAM"], [*make_events(3), POISON])
    run = await asyncio.to_thread(consumers, env, "redrive")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.splitlines() == [old_key_line("redrive", env["EVENTS_TABLE"])]
    assert await queued(sqs, env) == 1
    await nothing_written(dynamodb, env)


async def test_redrive_of_program_batches_needs_no_events_table(
    redrive_env: dict[str, str], dynamodb: DynamoDBClient, sqs: SQSClient, redis_url: str
) -> None:
    """As in the programs task definition, which names no events table."""
    env = redrive_env | {"REDIS_URL": redis_url}
    await dynamodb.delete_table(TableName=env["EVENTS_TABLE"])
    shoes = json.dumps(program("shoes", version=3)).encode()
    await queue_failed_batch(sqs, env, env["PROGRAM_STREAM"], [shoes])
    run = await asyncio.to_thread(consumers, env, "redrive")
    assert run.returncode == 0, run.stderr
    summary: dict[str, Any] = json.loads(run.stdout)
    assert (summary["redriven"], summary["kept"]) == (1, 0)
    assert await queued(sqs, env) == 0
