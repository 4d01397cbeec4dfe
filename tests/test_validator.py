"""Unit tests for tracker.validation.validator: classify() and the single-flight MissResolver."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from tracker.programs.model import Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.validation.cache import UNKNOWN, Absent, ProgramCache
from tracker.validation.store import ProgramStore, StoreUnavailableError
from tracker.validation.validator import MissResolver, classify

FROM = 1_700_000_000
UNTIL = 1_700_003_600


def program(
    program_id: str = "p1",
    *,
    valid: bool = True,
    customer_id: int = 42,
    valid_from: int | None = None,
    valid_until: int | None = None,
    version: int = 1,
) -> Program:
    return Program(
        program_id=program_id,
        program_name="Summer",
        customer_id=customer_id,
        customer_name="ACME",
        checksum="c",
        valid=valid,
        version=version,
        valid_from=valid_from,
        valid_until=valid_until,
    )


# --- classify --------------------------------------------------------------------------------


def test_classify_no_answer_is_unverified() -> None:
    assert classify(None, None, FROM) == pb.UNVERIFIED
    assert classify(None, 42, FROM) == pb.UNVERIFIED


@pytest.mark.parametrize("absent", [UNKNOWN, Absent(5)])
def test_classify_absent_is_unknown_program(absent: Absent) -> None:
    assert classify(absent, None, FROM) == pb.UNKNOWN_PROGRAM
    assert classify(absent, 42, FROM) == pb.UNKNOWN_PROGRAM


def test_classify_ok() -> None:
    assert classify(program(), None, FROM) == pb.OK
    assert classify(program(), 42, FROM) == pb.OK


def test_classify_inactive() -> None:
    assert classify(program(valid=False), None, FROM) == pb.INACTIVE


def test_classify_inactive_wins_over_window_and_customer() -> None:
    p = program(valid=False, valid_from=FROM, valid_until=UNTIL)
    assert classify(p, 99, UNTIL + 10) == pb.INACTIVE


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (FROM - 1, pb.OUTSIDE_WINDOW),
        (FROM - 0.001, pb.OUTSIDE_WINDOW),
        (FROM, pb.OK),  # valid_from is inclusive
        (FROM + 0.5, pb.OK),
        (UNTIL - 0.001, pb.OK),
        (UNTIL, pb.OUTSIDE_WINDOW),  # valid_until is exclusive
        (UNTIL + 1, pb.OUTSIDE_WINDOW),
    ],
)
def test_classify_window_edges(now: float, expected: int) -> None:
    p = program(valid_from=FROM, valid_until=UNTIL)
    assert classify(p, None, now) == expected


def test_classify_open_ended_windows() -> None:
    only_from = program(valid_from=FROM)
    assert classify(only_from, None, FROM - 1) == pb.OUTSIDE_WINDOW
    assert classify(only_from, None, 10**12) == pb.OK
    only_until = program(valid_until=UNTIL)
    assert classify(only_until, None, 0) == pb.OK
    assert classify(only_until, None, UNTIL) == pb.OUTSIDE_WINDOW


def test_classify_zero_window_bounds_are_bounds() -> None:
    # 0 is a real bound, not "unset"
    assert classify(program(valid_until=0), None, 0) == pb.OUTSIDE_WINDOW
    assert classify(program(valid_from=0), None, 0) == pb.OK


def test_classify_empty_window_is_always_outside() -> None:
    p = program(valid_from=FROM, valid_until=FROM)
    assert classify(p, None, FROM) == pb.OUTSIDE_WINDOW


@pytest.mark.parametrize("customer", [41, 43, 0, -1])
def test_classify_customer_mismatch(customer: int) -> None:
    assert classify(program(customer_id=42), customer, FROM) == pb.CUSTOMER_MISMATCH


def test_classify_customer_zero_matches_customer_zero() -> None:
    assert classify(program(customer_id=0), 0, FROM) == pb.OK


def test_classify_window_wins_over_customer_mismatch() -> None:
    p = program(valid_from=FROM, valid_until=UNTIL)
    assert classify(p, 99, UNTIL) == pb.OUTSIDE_WINDOW
    assert classify(p, 99, FROM) == pb.CUSTOMER_MISMATCH


# --- MissResolver ----------------------------------------------------------------------------


class FakeStore:
    """Duck-typed ProgramStore: `available` and an async `fetch` that waits for a gate."""

    def __init__(self, answers: dict[str, Program | Absent] | None = None) -> None:
        self.answers = answers or {}
        self.available = True
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()
        self.fail_with: Exception | None = None

    async def fetch(self, program_id: str) -> Program | Absent:
        self.calls.append(program_id)
        self.started.set()
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return self.answers.get(program_id, UNKNOWN)


def make_cache() -> ProgramCache:
    return ProgramCache(
        max_entries=100, ttl_seconds=60, negative_max_entries=100, negative_ttl_seconds=5
    )


def make_resolver(
    store: FakeStore, cache: ProgramCache | None = None, max_in_flight: int = 1000
) -> tuple[MissResolver, ProgramCache]:
    cache = cache or make_cache()
    return MissResolver(cache, cast(ProgramStore, store), max_in_flight=max_in_flight), cache


async def test_resolve_fetches_and_caches() -> None:
    store = FakeStore({"p1": program()})
    resolver, cache = make_resolver(store)
    assert await resolver.resolve("p1") == program()
    assert cache.get("p1") == program()
    assert store.calls == ["p1"]
    assert resolver.redis_calls == 1


async def test_resolve_unknown_is_cached_as_absent() -> None:
    store = FakeStore()
    resolver, cache = make_resolver(store)
    assert await resolver.resolve("ghost") == UNKNOWN
    assert cache.get("ghost") == UNKNOWN


async def test_hundred_concurrent_misses_make_one_fetch() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiters = [asyncio.create_task(resolver.resolve("p1")) for _ in range(100)]
    await store.started.wait()
    # every waiter ran before the fetch task (FIFO scheduling); make sure they are all parked
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    store.gate.set()
    results = await asyncio.gather(*waiters)
    assert results == [program()] * 100
    assert store.calls == ["p1"]
    assert resolver.redis_calls == 1
    assert cache.get("p1") == program()


async def test_flight_ends_with_the_fetch() -> None:
    store = FakeStore({"p1": program()})
    resolver, cache = make_resolver(store)
    await resolver.resolve("p1")
    cache.clear()
    await resolver.resolve("p1")
    assert store.calls == ["p1", "p1"]


async def test_distinct_ids_fetch_separately() -> None:
    store = FakeStore({"a": program("a"), "b": program("b")})
    resolver, _ = make_resolver(store)
    results = await asyncio.gather(resolver.resolve("a"), resolver.resolve("b"))
    assert list(results) == [program("a"), program("b")]
    assert sorted(store.calls) == ["a", "b"]


async def test_invalidate_during_fetch_answers_waiters_but_does_not_cache() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiters = [asyncio.create_task(resolver.resolve("p1")) for _ in range(3)]
    await store.started.wait()
    resolver.invalidate("p1")
    store.gate.set()
    assert await asyncio.gather(*waiters) == [program()] * 3
    assert cache.get("p1") is None


async def test_invalidate_of_another_id_does_not_mark_the_flight_stale() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiter = asyncio.create_task(resolver.resolve("p1"))
    await store.started.wait()
    resolver.invalidate("p2")
    store.gate.set()
    assert await waiter == program()
    assert cache.get("p1") == program()


async def test_invalidate_without_a_flight_is_harmless() -> None:
    store = FakeStore({"p1": program()})
    resolver, cache = make_resolver(store)
    resolver.invalidate("p1")
    assert await resolver.resolve("p1") == program()
    assert cache.get("p1") == program()  # a later fetch is not marked stale


async def test_invalidate_all_during_fetch_prevents_caching() -> None:
    store = FakeStore({"a": program("a"), "b": program("b")})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiters = [asyncio.create_task(resolver.resolve(pid)) for pid in ("a", "b")]
    await store.started.wait()
    await asyncio.sleep(0)  # let the second fetch start too
    assert sorted(store.calls) == ["a", "b"]
    resolver.invalidate_all()
    store.gate.set()
    assert await asyncio.gather(*waiters) == [program("a"), program("b")]
    assert cache.get("a") is None
    assert cache.get("b") is None


async def test_stale_fetch_does_not_overwrite_a_pushed_update() -> None:
    store = FakeStore({"p1": program(version=1)})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiter = asyncio.create_task(resolver.resolve("p1"))
    await store.started.wait()
    # a push arrives while Redis is read: the subscriber applies it and invalidates the flight
    cache.apply(program(version=2))
    resolver.invalidate("p1")
    store.gate.set()
    assert await waiter == program(version=1)
    assert cache.get("p1") == program(version=2)


async def test_store_unavailable_returns_none_without_fetching() -> None:
    store = FakeStore({"p1": program()})
    store.available = False
    resolver, cache = make_resolver(store)
    assert await resolver.resolve("p1") is None
    assert store.calls == []
    assert resolver.redis_calls == 0
    assert cache.get("p1") is None


async def test_store_failure_answers_none_to_every_waiter() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    store.fail_with = StoreUnavailableError("timeout")
    resolver, cache = make_resolver(store)
    waiters = [asyncio.create_task(resolver.resolve("p1")) for _ in range(5)]
    await store.started.wait()
    store.gate.set()
    assert await asyncio.gather(*waiters) == [None] * 5
    assert store.calls == ["p1"]
    assert cache.get("p1") is None
    # the failed flight is gone: the next miss tries again
    store.fail_with = None
    assert await resolver.resolve("p1") == program()


async def test_max_in_flight_sheds_new_ids() -> None:
    store = FakeStore({"a": program("a"), "b": program("b"), "c": program("c")})
    store.gate.clear()
    resolver, cache = make_resolver(store, max_in_flight=2)
    first = [asyncio.create_task(resolver.resolve(pid)) for pid in ("a", "b")]
    await store.started.wait()
    # a third distinct id is answered at once, without touching Redis
    assert await resolver.resolve("c") is None
    assert "c" not in store.calls
    # a request for an id already in flight still joins that flight
    joiner = asyncio.create_task(resolver.resolve("a"))
    store.gate.set()
    assert await asyncio.gather(*first, joiner) == [program("a"), program("b"), program("a")]
    assert store.calls.count("a") == 1
    assert cache.get("c") is None
    # capacity is back once the flights landed
    assert await resolver.resolve("c") == program("c")


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    leaver = asyncio.create_task(resolver.resolve("p1"))
    stayer = asyncio.create_task(resolver.resolve("p1"))
    await store.started.wait()
    leaver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaver
    store.gate.set()
    assert await stayer == program()
    assert cache.get("p1") == program()


async def test_close_cancels_flights() -> None:
    store = FakeStore({"p1": program()})
    store.gate.clear()
    resolver, cache = make_resolver(store)
    waiter = asyncio.create_task(resolver.resolve("p1"))
    await store.started.wait()
    await resolver.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert cache.get("p1") is None
    # nothing is left in flight: a new miss starts a new fetch
    store.gate.set()
    assert await resolver.resolve("p1") == program()
    assert store.calls == ["p1", "p1"]
