"""The lean PutRecords path: its body, its reading of answers, and real calls to kinesalite."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiobotocore.session import get_session

from tests.support.kinesis import read_records
from tests.support.kinesis_proxy import FaultyKinesisProxy
from tracker.devstack.processes import free_port
from tracker.events.entry import Entry
from tracker.events.sink import KinesisSink, failed_indexes, put_records_body

ENTRIES = [Entry(f"{n:032x}", bytes([n]) * (n + 1)) for n in range(5)]


@pytest.mark.parametrize("count", [0, 1, len(ENTRIES)])
def test_body_is_the_put_records_json(count: int) -> None:
    entries = ENTRIES[:count]
    body = json.loads(put_records_body("tracking-events", entries))
    assert body["StreamName"] == "tracking-events"
    assert [(r["PartitionKey"], base64.b64decode(r["Data"])) for r in body["Records"]] == [
        (e.partition_key, e.data) for e in entries
    ]


@pytest.mark.parametrize(
    ("answer", "failed"),
    [
        (b'{"FailedRecordCount":0,"Records":[{},{},{}]}', []),
        (b'{"FailedRecordCount":1,"Records":[{},{"ErrorCode":"InternalFailure"},{}]}', [1]),
        (b"not json", [0, 1, 2]),
        (b'{"FailedRecordCount":2}', [0, 1, 2]),
    ],
)
def test_failed_indexes(answer: bytes, failed: list[int]) -> None:
    assert failed_indexes(answer, 3) == failed


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def sink(http: aiohttp.ClientSession, endpoint: str, stream: str) -> KinesisSink:
    credentials = await get_session().get_credentials()
    assert credentials is not None
    return KinesisSink(http, endpoint, "us-east-1", stream, credentials)


async def test_records_reach_kinesalite(
    http: aiohttp.ClientSession, kinesalite_url: str, event_stream: str
) -> None:
    assert await (await sink(http, kinesalite_url, event_stream)).put(ENTRIES) == []
    assert sorted(await read_records(kinesalite_url, event_stream)) == sorted(
        e.data for e in ENTRIES
    )


async def test_entries_the_stream_refuses_are_reported(
    http: aiohttp.ClientSession, kinesalite_url: str, event_stream: str
) -> None:
    proxy = await FaultyKinesisProxy(
        kinesalite_url, lambda record: record["PartitionKey"].endswith(("1", "3"))
    ).start()
    try:
        assert await (await sink(http, proxy.url, event_stream)).put(ENTRIES) == [1, 3]
    finally:
        await proxy.close()
    assert len(await read_records(kinesalite_url, event_stream)) == 3


async def test_a_missing_stream_or_a_dead_endpoint_fails_every_entry(
    http: aiohttp.ClientSession, kinesalite_url: str
) -> None:
    missing = await sink(http, kinesalite_url, "no-such-stream")
    assert await missing.put(ENTRIES) == [0, 1, 2, 3, 4]
    dead = await sink(http, f"http://127.0.0.1:{free_port()}", "tracking-events")
    assert await dead.put(ENTRIES) == [0, 1, 2, 3, 4]


def test_an_answer_with_failures_is_never_read_as_all_accepted() -> None:
    answer = b'{"FailedRecordCount":01,"Records":[{"ErrorCode":"x"}]}'
    assert failed_indexes(answer, 1) == [0]
    spaced = b'{ "FailedRecordCount" : 1 , "Records" : [ { "ErrorCode" : "x" } ] }'
    assert failed_indexes(spaced, 1) == [0]
    assert failed_indexes(b'{ "FailedRecordCount" : 0 , "Records" : [ {} ] }', 1) == []
