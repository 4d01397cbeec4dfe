"""Shard leases on a real moto server: conditional writes decide every race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack

import pytest

from consumers.aws import open_clients
from consumers.leases import TRIM_HORIZON, HeldLease, Lease, LeaseLostError, LeaseTable
from consumers.settings import ConsumerSettings
from tests.support.consumers import consumer_env, provisioned

NO_REDIS = "redis://127.0.0.1:1/0"
SHARD = "shardId-000000000000"
FIRST = "49590338271490256608559692538361571095921575989136588898"
SECOND = "49590338271490256608559692538361571095921575989136599999"


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    return await provisioned(consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1))


@pytest.fixture
async def table(settings: ConsumerSettings) -> AsyncIterator[LeaseTable]:
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        yield LeaseTable(dynamodb, settings.lease_table, settings.event_stream)


async def only_lease(table: LeaseTable) -> Lease:
    leases = await table.list()
    assert len(leases) == 1
    return leases[0]


async def test_create_is_idempotent_and_leaves_an_existing_lease_alone(
    table: LeaseTable,
) -> None:
    await table.create(SHARD, ())
    fresh = await only_lease(table)
    assert fresh == Lease(SHARD, None, 0, TRIM_HORIZON, ())
    held = await table.checkpoint(await table.take(fresh, "w1"), "495")

    await table.create(SHARD, ())
    await table.create(SHARD, ("shardId-000000000009",))
    assert await only_lease(table) == held  # owner, counter and checkpoint kept

    await table.create("shardId-000000000002", ("shardId-000000000001", "shardId-000000000000"))
    child = {lease.shard_id: lease for lease in await table.list()}["shardId-000000000002"]
    assert child.parents == ("shardId-000000000000", "shardId-000000000001")
    assert child.owner is None


async def test_leases_of_another_stream_in_the_same_table_are_not_listed(
    table: LeaseTable, settings: ConsumerSettings
) -> None:
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        other = LeaseTable(dynamodb, settings.lease_table, settings.program_stream)
        await other.create(SHARD, ())
        await table.create(SHARD, ())
        await table.create("shardId-000000000001", ())
        assert [lease.shard_id for lease in await other.list()] == [SHARD]
        assert sorted(lease.shard_id for lease in await table.list()) == [
            SHARD,
            "shardId-000000000001",
        ]


async def test_two_workers_taking_the_same_observed_lease_only_one_wins(
    table: LeaseTable,
) -> None:
    for shard in range(10):
        shard_id = f"shardId-{shard:012d}"
        await table.create(shard_id, ())
        observed = {lease.shard_id: lease for lease in await table.list()}[shard_id]
        # One after the other, both from the same observation: moto evaluates conditions
        # without a lock across its request threads, so a concurrent race would test moto (real
        # DynamoDB applies a conditional write atomically); the condition is what is ours.
        first, second = ("w1", "w2") if shard % 2 else ("w2", "w1")
        outcomes = [
            await _outcome(table.take(observed, first)),
            await _outcome(table.take(observed, second)),
        ]
        won = [o for o in outcomes if isinstance(o, Lease)]
        lost = [o for o in outcomes if isinstance(o, LeaseLostError)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1, outcomes
        stored = {lease.shard_id: lease for lease in await table.list()}[shard_id]
        assert stored == won[0]
        assert stored.owner == first
        assert stored.counter == 1


async def _outcome(take: Awaitable[Lease]) -> Lease | BaseException:
    try:
        return await take
    except LeaseLostError as exc:
        return exc


async def test_the_old_owner_can_no_longer_renew_or_checkpoint_a_lease_taken_over(
    table: LeaseTable,
) -> None:
    await table.create(SHARD, ())
    mine = await table.take(await only_lease(table), "w1")
    mine = await table.renew(mine)
    theirs = await table.take(mine, "w2")  # w2 saw the counter stand still: w1 looks dead
    assert theirs.owner == "w2"

    with pytest.raises(LeaseLostError):
        await table.renew(mine)
    with pytest.raises(LeaseLostError):
        await table.checkpoint(mine, "999")
    with pytest.raises(LeaseLostError):
        await table.release(mine)
    assert await only_lease(table) == theirs
    renewed = await table.renew(theirs)
    assert renewed.owner == "w2"
    assert renewed.counter == theirs.counter + 1


async def test_renew_fails_for_a_worker_that_does_not_own_the_lease(table: LeaseTable) -> None:
    await table.create(SHARD, ())
    theirs = await table.take(await only_lease(table), "w2")
    pretender = Lease(SHARD, "w1", theirs.counter, theirs.checkpoint, ())
    with pytest.raises(LeaseLostError):
        await table.renew(pretender)
    with pytest.raises(LeaseLostError):
        await table.checkpoint(pretender, "123")
    assert await only_lease(table) == theirs


async def test_checkpoint_stores_the_sequence_and_moves_the_counter(table: LeaseTable) -> None:
    await table.create(SHARD, ())
    mine = await table.take(await only_lease(table), "w1")
    first = await table.checkpoint(mine, FIRST)
    assert first.checkpoint == FIRST
    assert first.counter == mine.counter + 1
    assert first.owner == "w1"
    second = await table.checkpoint(first, SECOND)
    assert second.counter == mine.counter + 2
    assert await only_lease(table) == second
    with pytest.raises(LeaseLostError):
        await table.checkpoint(first, "1")  # an out-of-date view never overwrites a newer one
    assert (await only_lease(table)).checkpoint == second.checkpoint


async def test_release_removes_the_owner_and_keeps_the_checkpoint(table: LeaseTable) -> None:
    await table.create(SHARD, ())
    mine = await table.checkpoint(await table.take(await only_lease(table), "w1"), "77")
    released = await table.release(mine)
    assert released.owner is None
    assert released.checkpoint == "77"
    assert released.counter == mine.counter + 1
    assert await only_lease(table) == released
    with pytest.raises(LeaseLostError):
        await table.renew(released)  # nobody owns it now
    taken = await table.take(released, "w2")
    assert taken.owner == "w2"
    assert taken.checkpoint == "77"


async def test_held_lease_serializes_concurrent_renewals_and_checkpoints(
    table: LeaseTable,
) -> None:
    await table.create(SHARD, ())
    held = HeldLease(table, await table.take(await only_lease(table), "w1"), duration=30)
    start = held.lease.counter
    rounds = 40
    for n in range(rounds):
        await asyncio.gather(held.renew(), held.checkpoint(f"{n:05d}"), held.renew())
    assert not held.lost
    assert held.lease.counter == start + 3 * rounds
    stored = await only_lease(table)
    assert stored == held.lease
    assert stored.checkpoint == f"{rounds - 1:05d}"
    assert stored.owner == "w1"


async def test_held_lease_taken_over_is_lost_for_good(table: LeaseTable) -> None:
    await table.create(SHARD, ())
    held = HeldLease(table, await table.take(await only_lease(table), "w1"), duration=30)
    await held.checkpoint("10")
    stolen = await table.take(held.lease, "w2")
    with pytest.raises(LeaseLostError):
        await held.renew()
    assert held.lost
    with pytest.raises(LeaseLostError):
        await held.checkpoint("11")
    with pytest.raises(LeaseLostError):
        await held.release()
    assert await only_lease(table) == stolen
