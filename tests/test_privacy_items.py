"""Privacy in what the consumers store: the event items' new attributes, the privacy settings,
the tables and index `consumers init` provisions, and dead letters free of personal data."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.session import get_session

from consumers.aws import open_clients
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import EventsProcessor, build_events_processor
from consumers.metrics import ConsumerMetrics
from consumers.personal_data import PERSONAL_FIELDS, REDACTED, redacted
from consumers.provision import provision
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from consumers.show import recent_events
from tests.support.consumers import (
    consumer_env,
    create_bare_events_table,
    provisioned,
    scan_table,
)
from tests.support.dynamodb_proxy import FaultyDynamoDBProxy
from tracker.envconfig import SettingsError
from tracker.privacy.keys import user_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

SHARD = "shardId-000000000000"
NO_REDIS = "redis://127.0.0.1:1/0"
SECRET = b"a test secret of 32 bytes, fixed"
DAY = 86_400
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) PrivacyTest/1.0"
ADDRESS = "198.51.100.0"
REFERER = "https://news.example/articles/private-path"
VISITOR = "0123456789abcdef0123456789abcdef"
PARAM_VALUE = "personal-campaign-value"


def personal_event(message_id: str, **fields: Any) -> pb.TrackingEvent:
    """An event carrying every personal field, consent granted."""
    base: dict[str, Any] = {
        "programid": "shoes",
        "message_id": message_id,
        "timestamp_ms": int(time.time() * 1000),
        "event_type": pb.CLICK,
        "validation": pb.OK,
        "is_valid": True,
        "user_agent": USER_AGENT,
        "client_ip_anonymized": ADDRESS,
        "referer": REFERER,
        "params": {"utm_term": PARAM_VALUE},
        "consent": pb.CONSENT_GRANTED,
        "visitor_id": VISITOR,
        "user_key": user_key(SECRET, "carol@example.com"),
        "gpc": False,
    }
    base.update(fields)
    return pb.TrackingEvent(**base)


def records(events: list[bytes]) -> list[StreamRecord]:
    return [
        StreamRecord(f"{49_700_000_000_000_000_000 + n:056d}", os.urandom(8).hex(), data)
        for n, data in enumerate(events, start=1)
    ]


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    env = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    return await provisioned({**env, "DEAD_LETTER_TTL_DAYS": "3"})


@pytest.fixture
async def processor(settings: ConsumerSettings) -> AsyncIterator[EventsProcessor]:
    async with AsyncExitStack() as stack:
        yield await _processor(settings, stack)


async def _processor(settings: ConsumerSettings, stack: AsyncExitStack) -> EventsProcessor:
    metrics = ConsumerMetrics()
    _, dynamodb = await open_clients(settings, stack)
    letters = DeadLetterTable(
        dynamodb, settings.dead_letter_table, metrics, ttl_days=settings.dead_letter_ttl_days
    )
    return build_events_processor(settings, dynamodb, letters, metrics)


async def items_by_id(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)
    return {item["message_id"]["S"]: item for item in items}


async def dead_letters(settings: ConsumerSettings) -> list[dict[str, Any]]:
    assert settings.aws.dynamodb_endpoint is not None
    return await scan_table(settings.aws.dynamodb_endpoint, settings.dead_letter_table)


def assert_no_personal_value(letter: dict[str, Any]) -> None:
    text = json.dumps(letter, default=repr)
    for value in (USER_AGENT, ADDRESS, REFERER, VISITOR, PARAM_VALUE, "utm_term"):
        assert value not in text
    assert user_key(SECRET, "carol@example.com") not in text
    assert letter["personal_data_removed"] == {"BOOL": True}
    event = pb.TrackingEvent()
    event.ParseFromString(letter["raw"]["B"])
    for name in PERSONAL_FIELDS:
        assert not getattr(event, name), name


# items


async def test_items_carry_consent_visitor_id_user_key_and_gpc(
    settings: ConsumerSettings, processor: EventsProcessor
) -> None:
    granted = personal_event("m-granted")
    denied = pb.TrackingEvent(
        programid="shoes",
        message_id="m-denied",
        timestamp_ms=granted.timestamp_ms + 1,
        event_type=pb.IMPRESSION,
        validation=pb.OK,
        is_valid=True,
        consent=pb.CONSENT_DENIED,
        gpc=True,
    )
    newer = pb.TrackingEvent(
        programid="shoes", message_id="m-newer", timestamp_ms=granted.timestamp_ms + 2
    )
    newer.consent = 7  # type: ignore[assignment]  # a value a newer producer knows
    payloads = [e.SerializeToString() for e in (granted, denied, newer)]
    await processor.process(SHARD, records(payloads))

    items = await items_by_id(settings)
    assert items["m-granted"]["consent"] == {"S": "CONSENT_GRANTED"}
    assert items["m-granted"]["visitor_id"] == {"S": VISITOR}
    assert items["m-granted"]["user_key"] == {"S": user_key(SECRET, "carol@example.com")}
    assert items["m-granted"]["gpc"] == {"BOOL": False}
    assert items["m-denied"]["consent"] == {"S": "CONSENT_DENIED"}
    assert items["m-denied"]["gpc"] == {"BOOL": True}
    assert "visitor_id" not in items["m-denied"]
    assert "user_key" not in items["m-denied"]  # absent, so the index stays sparse
    assert items["m-newer"]["consent"] == {"S": "UNKNOWN_7"}
    assert items["m-newer"]["gpc"] == {"BOOL": False}

    shown = {e["message_id"]: e async for e in recent_events(settings, "shoes", 5, 10)}
    assert shown["m-granted"]["consent"] == "CONSENT_GRANTED"
    assert shown["m-granted"]["visitor_id"] == VISITOR
    assert shown["m-granted"]["user_key"] == user_key(SECRET, "carol@example.com")
    assert shown["m-granted"]["gpc"] is False
    assert shown["m-denied"]["gpc"] is True
    assert shown["m-denied"]["consent"] == "CONSENT_DENIED"


# settings


def test_privacy_settings_defaults() -> None:
    settings = ConsumerSettings.from_env({})
    assert settings.privacy.table == "tracking-privacy"
    assert settings.privacy.user_id_key is None
    assert settings.privacy.audit_ttl_days == 1095
    assert settings.privacy.suppression_cache_seconds == 5
    assert settings.privacy.erase_margin_seconds == 10
    assert settings.dead_letter_ttl_days == 14


def test_user_id_key_is_read_as_utf8_and_never_shown() -> None:
    secret = "an ünïcode secret of enough bytes"
    settings = ConsumerSettings.from_env({"USER_ID_KEY": secret})
    assert settings.privacy.user_id_key == secret.encode()
    assert secret not in repr(settings)
    assert secret not in str(settings.privacy)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("USER_ID_KEY", "fifteen bytes.."),
        ("PRIVACY_TABLE", "no spaces allowed"),
        ("PRIVACY_AUDIT_TTL_DAYS", "three years"),
        ("DEAD_LETTER_TTL_DAYS", "0"),
        ("SUPPRESSION_CACHE_SECONDS", "-1"),
        ("ERASE_MARGIN_SECONDS", "soon"),
    ],
)
def test_a_bad_privacy_setting_is_named_and_the_secret_never_quoted(
    variable: str, value: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        ConsumerSettings.from_env({variable: value})
    result = subprocess.run(
        [sys.executable, "-m", "consumers", "init"],
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]
    if variable == "USER_ID_KEY":
        assert value not in result.stderr + result.stdout


# provisioning


async def test_init_creates_the_privacy_table_the_index_and_ttls_idempotently(
    kinesalite_url: str, moto_url: str
) -> None:
    settings = ConsumerSettings.from_env(consumer_env(kinesalite_url, moto_url, NO_REDIS, 1))
    first = await provision(settings)
    index = f"index:{settings.events_table}/user_key-index"
    assert first[f"table:{settings.privacy.table}"] == "created"
    assert first[index] == "created"
    second = await provision(settings)
    assert set(second.values()) == {"exists"}
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as dynamodb:
        privacy = (await dynamodb.describe_table(TableName=settings.privacy.table))["Table"]
        assert [(k["AttributeName"], k["KeyType"]) for k in privacy["KeySchema"]] == [
            ("user_key", "HASH"),
            ("entry", "RANGE"),
        ]
        assert privacy["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        events = (await dynamodb.describe_table(TableName=settings.events_table))["Table"]
        assert_user_key_index(events)
        for table in (settings.events_table, settings.dead_letter_table, settings.privacy.table):
            ttl = (await dynamodb.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
            assert ttl["TimeToLiveStatus"] == "ENABLED"
            assert ttl["AttributeName"] == "expires_at"


def assert_user_key_index(table: Any) -> None:
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "user_key-index"
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("user_key", "HASH"),
        ("event_key", "RANGE"),
    ]
    assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert index["IndexStatus"] == "ACTIVE"
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types["user_key"] == "S"


async def test_init_adds_the_index_to_an_events_table_created_without_it(
    kinesalite_url: str, moto_url: str
) -> None:
    settings = ConsumerSettings.from_env(consumer_env(kinesalite_url, moto_url, NO_REDIS, 1))
    key = user_key(SECRET, "dave@example.com")
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as dynamodb:
        await create_bare_events_table(dynamodb, settings.events_table, "program_bucket")
        old = {"program_bucket": {"S": "p#0"}, "event_key": {"S": "1#m"}, "user_key": {"S": key}}
        await dynamodb.put_item(TableName=settings.events_table, Item=old)
        done = await provision(settings)
        assert done[f"table:{settings.events_table}"] == "exists"
        assert done[f"index:{settings.events_table}/user_key-index"] == "created"
        events = (await dynamodb.describe_table(TableName=settings.events_table))["Table"]
        assert_user_key_index(events)
        found = await dynamodb.query(
            TableName=settings.events_table,
            IndexName="user_key-index",
            KeyConditionExpression="user_key = :u",
            ExpressionAttributeValues={":u": {"S": key}},
        )
        assert [i["event_key"]["S"] for i in found["Items"]] == ["1#m"]
    again = await provision(settings)
    assert again[f"index:{settings.events_table}/user_key-index"] == "exists"


# dead letters


async def test_every_dead_letter_expires(
    settings: ConsumerSettings, processor: EventsProcessor
) -> None:
    before = int(time.time())
    await processor.process(SHARD, records([b"\xff\xfe not an event"]))
    (letter,) = await dead_letters(settings)
    received = int(letter["received_at"]["N"])
    assert before <= received <= time.time()
    assert letter["expires_at"] == {"N": str(received + 3 * DAY)}
    assert letter["raw"] == {"B": b"\xff\xfe not an event"}  # nothing else to keep of it
    assert letter["personal_data_removed"] == {"BOOL": False}


async def test_a_refused_event_is_dead_lettered_without_its_personal_fields(
    settings: ConsumerSettings, moto_url: str
) -> None:
    refused = personal_event("m-refused")
    kept = personal_event("m-kept", timestamp_ms=refused.timestamp_ms + 1)
    proxy = await FaultyDynamoDBProxy(moto_url).start()
    proxy.refuse = lambda write: "m-refused" in json.dumps(write)
    aws = dataclasses.replace(settings.aws, dynamodb_endpoint=proxy.url)
    try:
        async with AsyncExitStack() as stack:
            via_proxy = await _processor(dataclasses.replace(settings, aws=aws), stack)
            await via_proxy.process(
                SHARD, records([e.SerializeToString() for e in (refused, kept)])
            )
    finally:
        await proxy.close()
    assert set(await items_by_id(settings)) == {"m-kept"}
    (letter,) = await dead_letters(settings)
    assert "ValidationException" in letter["error"]["S"]
    assert "expires_at" in letter
    assert_no_personal_value(letter)
    event = pb.TrackingEvent()
    event.ParseFromString(letter["raw"]["B"])
    assert (event.message_id, event.programid, event.consent) == (
        "m-refused",
        "shoes",
        pb.CONSENT_GRANTED,
    )


async def test_a_decodable_but_unfit_event_is_dead_lettered_without_its_personal_fields(
    settings: ConsumerSettings, processor: EventsProcessor
) -> None:
    no_program = personal_event("m-no-program", programid="")
    bad_key = personal_event("m-bad-key", user_key="Not-A-Key " + USER_AGENT)
    await processor.process(
        SHARD, records([no_program.SerializeToString(), bad_key.SerializeToString()])
    )
    assert await items_by_id(settings) == {}
    letters = {
        letter["sequence_number"]["S"][-1]: letter for letter in await dead_letters(settings)
    }
    assert "programid" in letters["1"]["error"]["S"]
    assert "user_key" in letters["2"]["error"]["S"]
    for letter in letters.values():
        assert_no_personal_value(letter)
        assert "Not-A-Key" not in json.dumps(letter, default=repr)


def test_error_text_loses_the_events_personal_values() -> None:
    event = personal_event("m", params={"a": PARAM_VALUE, "b": "x"})
    text = f"refused: {USER_AGENT} from {ADDRESS} via {REFERER}; {PARAM_VALUE}; x marks"
    assert redacted(text, event) == (
        f"refused: {REDACTED} from {REDACTED} via {REDACTED}; {REDACTED}; x marks"
    )
