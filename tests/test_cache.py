"""Unit tests for tracker.validation.cache.ProgramCache, driven by a fake clock."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.clock import FakeClock
from tracker.programs.model import Program, ProgramDeletion
from tracker.validation.cache import UNKNOWN, Absent, ProgramCache

TTL = 600.0
NEG_TTL = 5.0


def program(program_id: str = "p1", version: int = 1, **changes: object) -> Program:
    base = Program(
        program_id=program_id,
        program_name=f"name-{program_id}",
        customer_id=7,
        customer_name="ACME",
        checksum="c",
        valid=True,
        version=version,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_cache(
    clock: FakeClock, max_entries: int = 100, negative_max_entries: int = 100
) -> ProgramCache:
    return ProgramCache(
        max_entries=max_entries,
        ttl_seconds=TTL,
        negative_max_entries=negative_max_entries,
        negative_ttl_seconds=NEG_TTL,
        clock=clock,
    )


def test_miss_on_empty_cache(clock: FakeClock) -> None:
    cache = make_cache(clock)
    assert cache.get("p1") is None
    assert len(cache) == 0


def test_hit_returns_the_stored_program(clock: FakeClock) -> None:
    cache = make_cache(clock)
    p = program()
    cache.put(p, "p1")
    assert cache.get("p1") is p
    assert cache.get("p2") is None
    assert len(cache) == 1
    assert cache.program_ids() == ["p1"]


def test_ttl_expiry(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(), "p1")
    clock.advance(TTL - 0.5)
    assert cache.get("p1") == program()
    clock.advance(0.5)  # exactly at expiry: gone
    assert cache.get("p1") is None
    assert len(cache) == 0  # the expired entry was removed, not just hidden


def test_ttl_counts_from_the_last_put(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(version=1), "p1")
    clock.advance(TTL / 2)
    cache.put(program(version=2), "p1")
    clock.advance(TTL / 2 + 1)
    assert cache.get("p1") == program(version=2)


def test_lru_eviction_at_max_entries(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=3)
    for pid in ("a", "b", "c"):
        cache.put(program(pid), pid)
    assert cache.get("a") is not None  # a becomes most recently used; b is now the oldest
    cache.put(program("d"), "d")
    assert len(cache) == 3
    assert cache.get("b") is None
    assert {pid for pid in ("a", "c", "d") if cache.get(pid) is not None} == {"a", "c", "d"}


def test_negative_cache_evicts_the_least_recently_used(clock: FakeClock) -> None:
    cache = make_cache(clock, negative_max_entries=2)
    cache.put(UNKNOWN, "x")
    cache.put(UNKNOWN, "y")
    assert cache.get("x") is UNKNOWN  # x becomes most recently used; y is now the oldest
    cache.put(UNKNOWN, "z")
    assert cache.get("y") is None
    assert cache.get("x") is UNKNOWN
    assert cache.get("z") is UNKNOWN


def test_put_refreshes_recency(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=2)
    cache.put(program("a"), "a")
    cache.put(program("b"), "b")
    cache.put(program("a"), "a")  # a is rewritten: b is now the oldest
    cache.put(program("c"), "c")
    assert cache.get("b") is None
    assert cache.get("a") == program("a")


def test_absent_is_cached_for_the_negative_ttl(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(UNKNOWN, "ghost")
    assert cache.get("ghost") == UNKNOWN
    assert len(cache) == 0  # len counts programs only
    clock.advance(NEG_TTL - 0.5)
    assert cache.get("ghost") == UNKNOWN
    clock.advance(0.5)
    assert cache.get("ghost") is None


def test_negative_ttl_is_independent_of_program_ttl(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(), "p1")
    cache.put(UNKNOWN, "ghost")
    clock.advance(NEG_TTL + 1)
    assert cache.get("ghost") is None
    assert cache.get("p1") == program()


def test_absent_flood_does_not_evict_programs(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=10, negative_max_entries=5)
    for i in range(10):
        cache.put(program(f"p{i}"), f"p{i}")
    for i in range(1000):
        cache.put(UNKNOWN, f"bogus-{i}")
    assert len(cache) == 10
    assert all(cache.get(f"p{i}") == program(f"p{i}") for i in range(10))
    # the negative cache is itself bounded: only the newest bogus ids remain
    assert cache.get("bogus-0") is None
    assert cache.get("bogus-999") == UNKNOWN


def test_programs_do_not_evict_absent_entries(clock: FakeClock) -> None:
    cache = make_cache(clock, max_entries=2, negative_max_entries=2)
    cache.put(UNKNOWN, "ghost")
    for i in range(50):
        cache.put(program(f"p{i}"), f"p{i}")
    assert cache.get("ghost") == UNKNOWN


def test_put_program_replaces_absent_and_vice_versa(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(UNKNOWN, "p1")
    cache.put(program(), "p1")
    assert cache.get("p1") == program()
    cache.put(Absent(3), "p1")
    assert cache.get("p1") == Absent(3)
    assert len(cache) == 0
    clock.advance(NEG_TTL + 1)
    assert cache.get("p1") is None  # the old program did not come back


# --- pushed updates --------------------------------------------------------------------------


def test_apply_to_empty_cache(clock: FakeClock) -> None:
    cache = make_cache(clock)
    assert cache.apply(program(version=0)) is True
    assert cache.get("p1") == program(version=0)


def test_apply_higher_version_replaces(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(version=5), "p1")
    newer = program(version=6, valid=False)
    assert cache.apply(newer) is True
    assert cache.get("p1") == newer


@pytest.mark.parametrize("version", [5, 4, 0])
def test_apply_equal_or_lower_upsert_is_ignored(clock: FakeClock, version: int) -> None:
    cache = make_cache(clock)
    current = program(version=5)
    cache.put(current, "p1")
    assert cache.apply(program(version=version, checksum="other")) is False
    assert cache.get("p1") is current


@pytest.mark.parametrize("version", [5, 4])
def test_apply_equal_or_lower_deletion_is_ignored(clock: FakeClock, version: int) -> None:
    cache = make_cache(clock)
    current = program(version=5)
    cache.put(current, "p1")
    assert cache.apply(ProgramDeletion("p1", version)) is False
    assert cache.get("p1") is current


def test_apply_newer_deletion_leaves_a_tombstone(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(version=5), "p1")
    assert cache.apply(ProgramDeletion("p1", 6)) is True
    assert cache.get("p1") == Absent(6)
    assert len(cache) == 0
    assert "p1" not in cache.program_ids()


@pytest.mark.parametrize("version", [7, 6])
def test_tombstone_blocks_an_older_upsert(clock: FakeClock, version: int) -> None:
    cache = make_cache(clock)
    assert cache.apply(ProgramDeletion("p1", 7)) is True
    assert cache.apply(program(version=version)) is False
    assert cache.get("p1") == Absent(7)


def test_tombstone_yields_to_a_newer_upsert(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.apply(ProgramDeletion("p1", 7))
    assert cache.apply(program(version=8)) is True
    assert cache.get("p1") == program(version=8)


def test_newer_deletion_replaces_tombstone_and_older_is_ignored(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.apply(ProgramDeletion("p1", 7))
    assert cache.apply(ProgramDeletion("p1", 7)) is False
    assert cache.apply(ProgramDeletion("p1", 3)) is False
    assert cache.apply(ProgramDeletion("p1", 9)) is True
    assert cache.get("p1") == Absent(9)


@pytest.mark.parametrize("version", [0, 1, 10**12])
def test_unknown_is_replaced_by_any_pushed_upsert(clock: FakeClock, version: int) -> None:
    cache = make_cache(clock)
    cache.put(UNKNOWN, "p1")
    assert cache.apply(program(version=version)) is True
    assert cache.get("p1") == program(version=version)


def test_unknown_is_replaced_by_a_pushed_deletion(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(UNKNOWN, "p1")
    assert cache.apply(ProgramDeletion("p1", 0)) is True
    assert cache.get("p1") == Absent(0)


def test_unknown_is_below_every_real_version() -> None:
    assert UNKNOWN.version < 0


def test_apply_after_expiry_is_accepted(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(version=5), "p1")
    clock.advance(TTL)
    # the cached version is gone with the entry: nothing to compare against
    assert cache.apply(program(version=3)) is True
    assert cache.get("p1") == program(version=3)


def test_apply_is_per_program(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program("a", version=10), "a")
    assert cache.apply(program("b", version=1)) is True
    assert cache.get("a") == program("a", version=10)


def test_clear_absent_keeps_programs(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(), "p1")
    cache.put(UNKNOWN, "ghost")
    cache.clear_absent()
    assert cache.get("ghost") is None
    assert cache.get("p1") == program()


def test_clear_empties_both_caches(clock: FakeClock) -> None:
    cache = make_cache(clock)
    cache.put(program(), "p1")
    cache.put(UNKNOWN, "ghost")
    cache.clear()
    assert cache.get("p1") is None
    assert cache.get("ghost") is None
    assert len(cache) == 0
    assert cache.program_ids() == []
    # after a clear, versions are forgotten too
    assert cache.apply(program(version=0)) is True
