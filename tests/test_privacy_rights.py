"""A data subject's rights end to end: suppression in the events consumers (worker and Lambda),
its cache, and `consumers privacy export|erase|restrict` against a running worker."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from consumers import privacy
from consumers.attribution.erasure import AttributionRecords
from consumers.aws import open_clients
from consumers.dead_letters import DeadLetterTable
from consumers.event_items import Item
from consumers.events_processor import EventsProcessor, EventStores, Suppression
from consumers.events_writer import EventsWriter, Rejected
from consumers.lambda_handlers import ENVIRONMENT, events_handler
from consumers.metrics import ConsumerMetrics
from consumers.privacy_table import PrivacyTable
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings, PrivacySettings
from consumers.suppression import SuppressionList
from consumers.user_items import UserItems
from tests.support.clock import FakeClock
from tests.support.consumers import (
    consumer_env,
    item_rules,
    poll_until,
    provisioned,
    put_records,
    run_privacy,
    scan_table,
    stored_message_ids,
)
from tracker.devstack.processes import ManagedProcess, free_port
from tracker.privacy.keys import user_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

pytestmark = pytest.mark.timeout(120)

SHARD = "shardId-000000000000"
NO_REDIS = "redis://127.0.0.1:1/0"
SECRET = "the privacy tests' USER_ID_KEY, 40 bytes"
ALICE = "alice@example.com"
BOB = "bob@example.com"
USER_AGENT = "Mozilla/5.0 (Privacy Rights Test)"
GARBAGE = b"\xff\xfe this is no TrackingEvent"


def key_of(user_id: str) -> str:
    return user_key(SECRET.encode(), user_id)


def user_event(user_id: str | None, program_id: str = "shoes") -> bytes:
    """An event of the user (None: without a uid), with personal fields, consent granted."""
    return pb.TrackingEvent(
        programid=program_id,
        message_id=os.urandom(12).hex(),
        timestamp_ms=int(time.time() * 1000),
        event_type=pb.IMPRESSION,
        validation=pb.OK,
        is_valid=True,
        user_agent=USER_AGENT,
        client_ip_anonymized="192.0.2.0",
        consent=pb.CONSENT_GRANTED,
        visitor_id=os.urandom(16).hex(),
        user_key=key_of(user_id) if user_id else "",
    ).SerializeToString()


def ids(payloads: Sequence[bytes]) -> set[str]:
    return {pb.TrackingEvent.FromString(p).message_id for p in payloads}


def records(payloads: Sequence[bytes], first: int = 1) -> list[StreamRecord]:
    return [
        StreamRecord(f"{49_800_000_000_000_000_000 + n:056d}", os.urandom(8).hex(), data)
        for n, data in enumerate(payloads, start=first)
    ]


@pytest.fixture
def env(kinesalite_url: str, moto_url: str) -> dict[str, str]:
    return {
        **consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=2),
        "USER_ID_KEY": SECRET,
        "SUPPRESSION_CACHE_SECONDS": "1",
        "ERASE_MARGIN_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",  # the more the processes say, the more the output check covers
    }


@pytest.fixture
async def settings(env: dict[str, str]) -> ConsumerSettings:
    return await provisioned(env)


@pytest.fixture
async def dynamodb(settings: ConsumerSettings) -> AsyncIterator[DynamoDBClient]:
    async with AsyncExitStack() as stack:
        _, client = await open_clients(settings, stack)
        yield client


def privacy_table(settings: ConsumerSettings, dynamodb: DynamoDBClient) -> PrivacyTable:
    return PrivacyTable(dynamodb, settings.privacy.table, settings.privacy.audit_ttl_days)


async def stored(settings: ConsumerSettings) -> set[str]:
    assert settings.aws.dynamodb_endpoint is not None
    return set(await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table))


def metric(metrics: ConsumerMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else float(value)


# the suppression cache


async def test_a_not_suppressed_answer_expires_and_a_suppressed_one_is_kept(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    clock = FakeClock()
    metrics = ConsumerMetrics()
    users = SuppressionList(dynamodb, trusted_for_5_s(settings), metrics, clock=clock)
    alice, bob = key_of(ALICE), key_of(BOB)

    verdict = await users.check({alice, bob})
    assert verdict.suppressed == frozenset()
    assert metric(metrics, "consumer_suppression_lookups_total") == 2
    await privacy_table(settings, dynamodb).suppress(alice, "restrict")
    clock.now += 4.9  # still trusted: the window erase waits out
    assert (await users.check({alice})).suppressed == frozenset()
    assert metric(metrics, "consumer_suppression_lookups_total") == 2
    assert not users.stale(verdict)

    clock.now += 0.2
    assert users.stale(verdict)
    assert (await users.check({alice, bob})).suppressed == {alice}
    assert metric(metrics, "consumer_suppression_lookups_total") == 4
    clock.now += 10 * 365 * 86_400  # suppression is permanent: never asked again
    assert (await users.check({alice})).suppressed == {alice}
    assert metric(metrics, "consumer_suppression_lookups_total") == 4
    # fresh: cached "not suppressed" answers are not trusted
    await users.check({bob}, fresh=True)
    assert metric(metrics, "consumer_suppression_lookups_total") == 5


async def test_a_batch_without_user_keys_makes_no_lookup(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    metrics = ConsumerMetrics()
    # A privacy table that does not exist: any lookup would fail the batch.
    users = SuppressionList(
        dynamodb, replace(settings.privacy, table="no-such-privacy-table"), metrics, max_attempts=1
    )
    processor = EventsProcessor(
        settings.event_stream,
        EventStores(
            EventsWriter(dynamodb, settings.events_table, metrics, 1),
            DeadLetterTable(dynamodb, settings.dead_letter_table, metrics, 1),
            Suppression(users, UserItems(dynamodb, settings.events_table, 1)),
        ),
        metrics,
        item_rules(settings),
    )
    anonymous = [user_event(None) for _ in range(5)]
    await processor.process(SHARD, records(anonymous))
    assert await stored(settings) == ids(anonymous)
    assert metric(metrics, "consumer_suppression_lookups_total") == 0
    # ...and an event that could not be checked is not stored
    alice = user_event(ALICE)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        await processor.process(SHARD, records([alice], first=10))
    assert await stored(settings) == ids(anonymous)


class SlowWriter(EventsWriter):
    """A write during which something happens (the user is suppressed, time passes)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        dynamodb: DynamoDBClient,
        metrics: ConsumerMetrics,
        meanwhile: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(dynamodb, settings.events_table, metrics)
        self._meanwhile = meanwhile

    async def write(self, items: Sequence[Item]) -> list[Rejected]:
        rejected = await super().write(items)
        await self._meanwhile()
        return rejected


async def test_a_write_slower_than_the_cache_is_checked_again_and_undone(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    clock = FakeClock()
    metrics = ConsumerMetrics()
    users = SuppressionList(dynamodb, trusted_for_5_s(settings), metrics, clock=clock)

    async def erase_starts_during_a_throttled_write() -> None:
        await privacy_table(settings, dynamodb).suppress(key_of(ALICE), "erase")
        clock.now += 6

    writer = SlowWriter(settings, dynamodb, metrics, erase_starts_during_a_throttled_write)
    processor = EventsProcessor(
        settings.event_stream,
        EventStores(
            writer,
            DeadLetterTable(dynamodb, settings.dead_letter_table, metrics),
            Suppression(users, UserItems(dynamodb, settings.events_table)),
        ),
        metrics,
        item_rules(settings),
    )
    alice = [user_event(ALICE) for _ in range(3)]
    others = [user_event(BOB), user_event(None)]
    await processor.process(SHARD, records([*alice, *others]))
    assert await stored(settings) == ids(others)
    assert metric(metrics, "consumer_events_suppressed_total") == 3


# Lambda


def lambda_event(payloads: Sequence[bytes]) -> dict[str, Any]:
    entries = []
    for n, data in enumerate(payloads, start=1):
        sequence = f"{49_900_000_000_000_000_000 + n:056d}"
        entries.append(
            {
                "eventID": f"{SHARD}:{sequence}",
                "eventSource": "aws:kinesis",
                "kinesis": {
                    "partitionKey": os.urandom(8).hex(),
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode(),
                },
            }
        )
    return {"Records": entries}


async def test_the_lambda_handler_honours_suppression(
    settings: ConsumerSettings,
    env: dict[str, str],
    dynamodb: DynamoDBClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    await privacy_table(settings, dynamodb).suppress(key_of(ALICE), "restrict")
    alice = [user_event(ALICE) for _ in range(2)]
    others = [user_event(BOB), user_event(None)]
    event = lambda_event([alice[0], others[0], GARBAGE, alice[1], others[1]])
    try:
        answer = await asyncio.to_thread(events_handler, event, None)
    finally:
        await asyncio.to_thread(ENVIRONMENT.close)  # the handler keeps its loop between calls
    assert answer == {"batchItemFailures": []}
    assert await stored(settings) == ids(others)
    assert settings.aws.dynamodb_endpoint is not None
    (letter,) = await scan_table(settings.aws.dynamodb_endpoint, settings.dead_letter_table)
    assert int(letter["expires_at"]["N"]) == int(letter["received_at"]["N"]) + 14 * 86_400


# the commands


@pytest.mark.parametrize("operation", ["export", "erase", "restrict"])
def test_commands_need_the_key_and_a_sane_user_id(env: dict[str, str], operation: str) -> None:
    unset = run_privacy({**env, "USER_ID_KEY": ""}, operation, ALICE)
    assert unset.returncode == 2
    assert len(unset.stderr.strip().splitlines()) == 1
    assert "USER_ID_KEY" in unset.stderr
    for bad in ("", "x" * 257):
        refused = run_privacy(env, operation, bad)
        assert refused.returncode == 2
        assert "--user-id" in refused.stderr
        if bad:
            assert bad not in refused.stderr + refused.stdout
        assert refused.stdout == ""


class Outputs:
    """Everything the processes of a test printed, for the check that no raw id is in it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def run(self, env: dict[str, str], operation: str, user_id: str) -> Awaitable[str]:
        async def go() -> str:
            result = await asyncio.to_thread(run_privacy, env, operation, user_id)
            self.texts += [result.stdout, result.stderr]
            assert result.returncode == 0, result.stderr
            return result.stdout

        return go()


@contextmanager
def events_worker(env: dict[str, str], log: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    worker_env = {
        **os.environ,
        **env,
        "CONSUMER_WORKER_ID": "privacy-worker",
        "CONSUMER_METRICS_PORT": str(port),
        "CONSUMER_METRICS_HOST": "127.0.0.1",
    }
    argv = [sys.executable, "-m", "consumers", "events"]
    with log.open("wb") as output:
        process = ManagedProcess("events", argv, port, env=worker_env, output=output)
        try:
            yield process.start()
        finally:
            process.kill()


async def suppressed_total(worker: ManagedProcess) -> float:
    url = f"http://127.0.0.1:{worker.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("consumer_events_suppressed_total "):
            return float(line.split()[1])
    return 0.0


async def index_keys(settings: ConsumerSettings, key: str) -> list[dict[str, Any]]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=settings.aws.dynamodb_endpoint
    ) as dynamodb:
        found = await dynamodb.query(
            TableName=settings.events_table,
            IndexName="user_key-index",
            KeyConditionExpression="user_key = :u",
            ExpressionAttributeValues={":u": {"S": key}},
        )
    return list(found["Items"])


async def test_export_erase_and_restrict_against_a_running_worker(
    settings: ConsumerSettings, env: dict[str, str], kinesalite_url: str, tmp_path: Path
) -> None:
    endpoint = settings.aws.dynamodb_endpoint
    assert endpoint is not None
    outputs = Outputs()
    with events_worker(env, tmp_path / "worker.log") as worker:
        alice = [user_event(ALICE, program) for program in ("shoes", "shoes", "books")]
        bob = [user_event(BOB) for _ in range(2)]
        anonymous = [user_event(None)]
        await put_records(
            kinesalite_url, settings.event_stream, [*alice, *bob, *anonymous, GARBAGE]
        )
        everyone = ids([*alice, *bob, *anonymous])
        await poll_until(lambda: stored(settings), lambda s: s >= everyone, what="first events")

        lines = (await outputs.run(env, "export", ALICE)).splitlines()
        exported = [json.loads(line) for line in lines]
        assert {e["message_id"] for e in exported} == ids(alice)
        assert len(exported) == 3
        assert {(e["user_key"], e["consent"], e["user_agent"]) for e in exported} == {
            (key_of(ALICE), "CONSENT_GRANTED", USER_AGENT)
        }

        assert json.loads(await outputs.run(env, "erase", ALICE)) == {"erased": 3}
        assert await index_keys(settings, key_of(ALICE)) == []
        left = await scan_table(endpoint, settings.events_table)
        assert all(item.get("user_key") != {"S": key_of(ALICE)} for item in left)
        assert {item["message_id"]["S"] for item in left} == ids([*bob, *anonymous])

        later = [user_event(ALICE), user_event(BOB)]
        await put_records(kinesalite_url, settings.event_stream, later)
        await poll_until(lambda: suppressed_total(worker), lambda n: n >= 1, what="suppressed")
        await poll_until(lambda: stored(settings), lambda s: ids(later[1:]) <= s, what="bob")
        assert not ids(later[:1]) & await stored(settings)

        assert json.loads(await outputs.run(env, "restrict", BOB)) == {"restricted": True}
        restricted = [user_event(BOB), user_event(None)]
        await put_records(kinesalite_url, settings.event_stream, restricted)
        await poll_until(lambda: suppressed_total(worker), lambda n: n >= 2, what="bob dropped")
        await poll_until(lambda: stored(settings), lambda s: ids(restricted[1:]) <= s, what="anon")
        assert await stored(settings) == ids([*bob, *anonymous, later[1], restricted[1]])
        assert await outputs.run(env, "export", ALICE) == ""  # nothing left of her
        assert worker.stop() == 0

    (letter,) = await scan_table(endpoint, settings.dead_letter_table)
    assert int(letter["expires_at"]["N"]) == int(letter["received_at"]["N"]) + 14 * 86_400
    await assert_privacy_records(settings)
    outputs.texts.append((tmp_path / "worker.log").read_text())
    for text in outputs.texts:
        assert ALICE not in text
        assert BOB not in text
    assert USER_AGENT not in outputs.texts[-1]  # the worker logs no personal value either


async def assert_privacy_records(settings: ConsumerSettings) -> None:
    """Markers and audit records as the operations left them, and no raw id anywhere."""
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.privacy.table)
    dumped = json.dumps(items)
    assert ALICE not in dumped
    assert BOB not in dumped
    markers = {i["user_key"]["S"]: i for i in items if i["entry"]["S"] == "suppressed"}
    assert {k: m["operation"]["S"] for k, m in markers.items()} == {
        key_of(ALICE): "erase",
        key_of(BOB): "restrict",
    }
    assert all("expires_at" not in marker for marker in markers.values())
    audits = sorted(
        (i for i in items if i["entry"]["S"].startswith("audit#")), key=lambda i: i["at_ms"]["N"]
    )
    assert [(a["user_key"]["S"], a["operation"]["S"], a["count"]["N"]) for a in audits] == [
        (key_of(ALICE), "export", "3"),
        (key_of(ALICE), "erase", "3"),
        (key_of(BOB), "restrict", "0"),
        (key_of(ALICE), "export", "0"),
    ]
    for audit in audits:
        at_ms = int(audit["at_ms"]["N"])
        assert audit["entry"]["S"] == f"audit#{at_ms:013d}#{audit['operation']['S']}"
        assert int(audit["expires_at"]["N"]) == at_ms // 1000 + 1095 * 86_400


def unchecked_processor(settings: ConsumerSettings, dynamodb: DynamoDBClient) -> EventsProcessor:
    """A processor that stores without asking: a worker trusting a "not suppressed" answer."""
    metrics = ConsumerMetrics()
    return EventsProcessor(
        settings.event_stream,
        EventStores(
            EventsWriter(dynamodb, settings.events_table, metrics),
            DeadLetterTable(dynamodb, settings.dead_letter_table, metrics),
        ),
        metrics,
        item_rules(settings),
    )


def opened_privacy(
    settings: ConsumerSettings, dynamodb: DynamoDBClient, settle_seconds: float
) -> privacy.Privacy:
    items = UserItems(dynamodb, settings.events_table)
    attribution = AttributionRecords(dynamodb, settings.attribution.table, None)
    return privacy.Privacy(privacy_table(settings, dynamodb), items, settle_seconds, attribution)


async def test_erase_deletes_more_than_one_batch_and_a_second_erase_finds_nothing(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    """More items than one BatchWriteItem takes, and a second erase finds nothing."""
    many = [user_event(ALICE, f"p{n % 7}") for n in range(130)]
    await unchecked_processor(settings, dynamodb).process(SHARD, records(many))
    opened = opened_privacy(settings, dynamodb, 0.0)
    exported: list[dict[str, Any]] = []
    assert await privacy.export(opened, key_of(ALICE), exported.append) == 130
    assert [e["event_key"] for e in exported] == sorted(e["event_key"] for e in exported)
    assert await privacy.erase(opened, key_of(ALICE)) == 130
    assert await stored(settings) == set()
    assert await privacy.erase(opened, key_of(ALICE)) == 0


async def test_erase_deletes_what_a_worker_stored_while_it_waited(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    """The race erase waits out: a worker that trusted "not suppressed" stores an event after
    the first pass; the second pass deletes it, and it is counted."""
    before = [user_event(ALICE) for _ in range(4)]
    worker = unchecked_processor(settings, dynamodb)
    await worker.process(SHARD, records(before))
    erasing = asyncio.create_task(
        privacy.erase(opened_privacy(settings, dynamodb, 2.0), key_of(ALICE))
    )
    await poll_until(lambda: stored(settings), lambda s: not s, what="the first pass")
    late = [user_event(ALICE)]
    await worker.process(SHARD, records(late, first=10))
    assert await stored(settings) == ids(late)
    assert await erasing == 5
    assert await stored(settings) == set()


def trusted_for_5_s(settings: ConsumerSettings) -> PrivacySettings:
    """The privacy settings with "not suppressed" answers trusted for 5 s (the tests' clock)."""
    return replace(settings.privacy, suppression_cache_seconds=5)
