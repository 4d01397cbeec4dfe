"""Report keys: their format, the store in moto's DynamoDB, and the verifier's short cache."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

import pytest

from reports.auth import AuthError, KeyVerifier, bearer_token
from reports.keys import KEY_TEXT, KeyStore, ReportKey, digest, key_id_of, new_key_text
from reports.unavailable import UnavailableError
from tests.support.report_stack import Tables, create_tables, dynamodb, fresh_tables
from tracker.devstack.processes import free_port


@pytest.fixture
async def store(moto_url: str) -> AsyncIterator[tuple[KeyStore, Tables]]:
    tables = fresh_tables()
    async with dynamodb(moto_url) as client:
        await create_tables(client, tables)
        yield KeyStore(client, tables.keys, 5.0, clock=lambda: 1_800_000_000.5), tables


def test_a_key_is_adt_its_id_and_256_random_bits() -> None:
    texts = {new_key_text() for _ in range(200)}
    assert len(texts) == 200
    for text in texts:
        assert re.fullmatch(r"adt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", text)
        assert KEY_TEXT.fullmatch(text)
        assert key_id_of(text) == text[4:16]
    assert key_id_of("adt_0123456789AB_" + "A" * 43) is None  # ids are lowercase
    assert key_id_of("adt_0123456789ab_" + "A" * 42) is None


async def test_create_stores_only_the_hash(store: tuple[KeyStore, Tables], moto_url: str) -> None:
    keys, tables = store
    key, text = await keys.create(42, "dashboard")
    assert (key.key_id, key.customer_id, key.name) == (text[4:16], 42, "dashboard")
    async with dynamodb(moto_url) as client:
        item = (await client.get_item(TableName=tables.keys, Key={"key_id": {"S": key.key_id}}))[
            "Item"
        ]
    assert item["secret_sha256"] == {"S": hashlib.sha256(text.encode()).hexdigest()}
    assert item["created_ms"] == {"N": "1800000000500"}
    assert item["customer_id"] == {"N": "42"}
    assert "revoked_ms" not in item
    assert text.split("_", 2)[2] not in repr(item)
    assert key.secret_sha256 not in repr(key)


async def test_lookup_list_and_revoke(store: tuple[KeyStore, Tables]) -> None:
    keys, _ = store
    first, _ = await keys.create(42, None)
    second, _ = await keys.create(7, "other")
    assert await keys.lookup(first.key_id) == first
    assert await keys.lookup("0123456789ab") is None
    assert [k.key_id for k in await keys.list_keys()] == [second.key_id, first.key_id]
    assert [k.key_id for k in await keys.list_keys(42)] == [first.key_id]
    assert await keys.revoke(first.key_id)
    revoked = await keys.lookup(first.key_id)
    assert revoked is not None
    assert revoked.revoked_ms == 1_800_000_000_500
    assert await keys.revoke(first.key_id)  # again: still revoked, the first time kept
    assert await keys.revoke("0123456789ab") is False
    listing = (await keys.list_keys(42))[0].listing()
    assert listing == {
        "key_id": first.key_id,
        "customer_id": 42,
        "name": None,
        "created": 1_800_000_000_500,
        "revoked": 1_800_000_000_500,
    }


async def test_a_missing_table_is_unavailable(moto_url: str) -> None:
    async with dynamodb(moto_url) as client:
        with pytest.raises(UnavailableError) as raised:
            await KeyStore(client, "no-such-table", 5.0).lookup("0123456789ab")
    assert raised.value.what == "report keys"


async def test_a_closed_port_is_unavailable_within_the_bound() -> None:
    async with dynamodb(f"http://127.0.0.1:{free_port()}") as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UnavailableError):
            await KeyStore(client, "keys", 0.5).lookup("0123456789ab")
        assert loop.time() - started < 2.0


# --- the Authorization header ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "given"),
    [
        (None, False),
        ("", False),
        ("Basic abc", False),
        ("Token abc", False),
        ("Bearer", False),
        ("Bearer ", False),
        ("Bearer " + "x" * 300, True),
    ],
)
def test_a_header_without_a_token_is_refused(header: str | None, given: bool) -> None:
    with pytest.raises(AuthError) as raised:
        bearer_token(header)
    assert raised.value.token_given is given
    assert raised.value.challenge() == ('Bearer error="invalid_token"' if given else "Bearer")


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"


# --- the verifier's cache -----------------------------------------------------------------------


class FakeStore:
    """A key table in memory that counts its reads; `gate` holds reads while cleared."""

    def __init__(self) -> None:
        self.keys: dict[str, ReportKey] = {}
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def add(self, text: str, revoked: bool = False) -> None:
        key_id = text[4:16]
        self.keys[key_id] = ReportKey(key_id, 42, None, 1, 2 if revoked else None, digest(text))

    async def lookup(self, key_id: str) -> ReportKey | None:
        self.reads += 1
        await self.gate.wait()
        return self.keys.get(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_cached_for_at_most_the_ttl() -> None:
    store, clock = FakeStore(), Clock()
    verifier = KeyVerifier(store, ttl=5.0, clock=clock)
    text = new_key_text()
    store.add(text)
    assert (await verifier.verify(text)).customer_id == 42
    store.add(text, revoked=True)  # revoked in the table
    clock.now += 4.9
    await verifier.verify(text)  # still cached
    clock.now += 0.2
    with pytest.raises(AuthError):
        await verifier.verify(text)
    assert store.reads == 2


async def test_unknown_ids_and_wrong_secrets_cost_one_read_per_ttl() -> None:
    store, clock = FakeStore(), Clock()
    verifier = KeyVerifier(store, ttl=5.0, clock=clock)
    unknown = new_key_text()
    text = new_key_text()
    store.add(text)
    forged = text[:-2] + ("AA" if not text.endswith("AA") else "BB")
    for _ in range(10):
        for attempt in (unknown, forged):
            with pytest.raises(AuthError):
                await verifier.verify(attempt)
    assert store.reads == 2
    with pytest.raises(AuthError):
        await verifier.verify("adt_short")  # malformed: no read at all
    assert store.reads == 2


async def test_concurrent_requests_for_one_key_share_one_read() -> None:
    store = FakeStore()
    verifier = KeyVerifier(store)
    text = new_key_text()
    store.add(text)
    store.gate.clear()
    waiting = [asyncio.create_task(verifier.verify(text)) for _ in range(20)]
    await asyncio.sleep(0.01)
    store.gate.set()
    assert {key.key_id for key in await asyncio.gather(*waiting)} == {text[4:16]}
    assert store.reads == 1


async def test_the_cache_is_bounded() -> None:
    store, clock = FakeStore(), Clock()
    verifier = KeyVerifier(store, ttl=60.0, max_entries=3, clock=clock)
    texts = [new_key_text() for _ in range(5)]
    for text in texts:
        with pytest.raises(AuthError):
            await verifier.verify(text)
    assert len(verifier._cache) == 3
    with pytest.raises(AuthError):
        await verifier.verify(texts[0])  # evicted: read again
    assert store.reads == 6
