"""No answered request loses its event: real tracker processes, real redis-server and kinesalite,
a network partition in front of Kinesis, SIGTERM and SIGKILL under a steady tagged load.

Each test counts: every tag whose 200 arrived must be on the stream (duplicates are allowed, and
recorded as the test's `duplicates` property: the consumers make them one item).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.kinesis import read_events
from tests.support.load import TaggedLoad
from tests.support.programs import STANDARD, write_programs
from tests.support.tcp_proxy import PartitionProxy
from tests.support.tmpfs import tmpfs
from tests.support.tracker_process import TrackerProcess, tracker_process
from tracker.devstack.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

RecordProperty = Callable[[str, object], None]
RATE = 150  # requests per second: steady, and gentle enough for two shared cores


@pytest.fixture
async def env(
    tracker_env: dict[str, str], redis_url: str, partition: PartitionProxy
) -> dict[str, str]:
    await write_programs(redis_url, STANDARD)
    return {
        **tracker_env,
        "AWS_ENDPOINT_URL_KINESIS": partition.url,
        "SPILL_AFTER_SECONDS": "1",
        "SHIP_DRAIN_SECONDS": "2",
    }


async def tags_on_stream(kinesalite_url: str, stream: str) -> Counter[str]:
    return Counter(e.params["tag"] for e in await read_events(kinesalite_url, stream))


async def assert_every_answered_tag_arrives(
    answered: set[str],
    kinesalite_url: str,
    stream: str,
    record_property: RecordProperty,
    timeout: float = 60.0,
) -> Counter[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = await tags_on_stream(kinesalite_url, stream)
        missing = answered - seen.keys()
        if not missing or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    duplicates = sum(count - 1 for count in seen.values())
    record_property("answered", len(answered))
    record_property("duplicates", duplicates)
    assert len(answered) > RATE, "the load did not run"
    assert not missing, f"{len(missing)} of {len(answered)} answered events never reached Kinesis"
    return seen


async def all_arrive_then_stop(
    tracker: TrackerProcess,
    answered: set[str],
    kinesalite_url: str,
    stream: str,
    record_property: RecordProperty,
) -> None:
    """Every answered tag reaches the stream; then the tracker stops cleanly on SIGTERM."""
    await assert_every_answered_tag_arrives(answered, kinesalite_url, stream, record_property)
    returncode, output = await tracker.terminate(timeout=30)
    assert returncode == 0, output.decode()


def segments(spill_dir: Path) -> list[Path]:
    return sorted(spill_dir.glob("part-*/*.seg"))


async def test_outage_then_sigterm_then_restart_with_two_workers_loses_nothing(
    env: dict[str, str],
    partition: PartitionProxy,
    kinesalite_url: str,
    event_stream: str,
    record_property: RecordProperty,
) -> None:
    port = free_port()
    async with TaggedLoad(f"http://127.0.0.1:{port}", RATE) as load:
        async with tracker_process(env, port=port) as first:
            await asyncio.sleep(2)
            partition.partition()
            await asyncio.sleep(4)  # past SPILL_AFTER_SECONDS: events go to disk
            returncode, output = await first.terminate(timeout=30)
            assert returncode == 0, output.decode()
        assert segments(Path(env["SPILL_DIR"])), "the outage's events should wait on disk"
        async with tracker_process({**env, "TRACKER_WORKERS": "2"}, port=port) as second:
            await asyncio.sleep(3)
            partition.heal()
            await asyncio.sleep(2)
            await all_arrive_then_stop(
                second, set(load.answered), kinesalite_url, event_stream, record_property
            )
    assert segments(Path(env["SPILL_DIR"])) == []


async def test_write_ahead_survives_sigkill_of_every_process_at_any_moment(
    env: dict[str, str],
    partition: PartitionProxy,
    kinesalite_url: str,
    event_stream: str,
    record_property: RecordProperty,
) -> None:
    env = {**env, "DURABILITY": "write-ahead"}
    port = free_port()
    async with TaggedLoad(f"http://127.0.0.1:{port}", RATE) as load:
        async with tracker_process({**env, "TRACKER_WORKERS": "2"}, port=port) as first:
            await asyncio.sleep(2)  # shipping normally
            partition.partition()
            await asyncio.sleep(3)
            first.kill_all()  # in the middle of the outage
        async with tracker_process(env, port=port) as second:
            await asyncio.sleep(2)
            partition.heal()
            await asyncio.sleep(1.5)
            second.kill_all()  # in the middle of the replay
        async with tracker_process({**env, "TRACKER_WORKERS": "2"}, port=port) as third:
            await asyncio.sleep(3)
            await all_arrive_then_stop(
                third, set(load.answered), kinesalite_url, event_stream, record_property
            )
    assert segments(Path(env["SPILL_DIR"])) == []


async def test_a_live_part_is_never_adopted_and_a_dead_ones_is(
    env: dict[str, str],
    partition: PartitionProxy,
    kinesalite_url: str,
    event_stream: str,
    record_property: RecordProperty,
) -> None:
    env = {**env, "DURABILITY": "write-ahead"}
    partition.partition()
    async with tracker_process(env) as doomed, tracker_process(env) as survivor:
        async with (
            TaggedLoad(doomed.base_url, RATE / 2) as doomed_load,
            TaggedLoad(survivor.base_url, RATE / 2) as survivor_load,
        ):
            await asyncio.sleep(5)  # several adoption scans while both live
        assert await doomed.metric("tracker_spill_adopted_parts_total") == 0
        assert await survivor.metric("tracker_spill_adopted_parts_total") == 0
        assert await doomed.metric("tracker_spill_events") > 0
        doomed.kill_all()
        await _wait_for_metric(survivor, "tracker_spill_adopted_parts_total", 1)
        partition.heal()
        answered = doomed_load.answered | survivor_load.answered
        await all_arrive_then_stop(
            survivor, answered, kinesalite_url, event_stream, record_property
        )
    assert segments(Path(env["SPILL_DIR"])) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that fills up."""
    with tmpfs(tmp_path / "tiny", "1m") as mount_point:
        yield mount_point


async def test_full_disk_answers_counts_drops_and_recovers_when_space_returns(
    env: dict[str, str],
    partition: PartitionProxy,
    kinesalite_url: str,
    event_stream: str,
    tiny_disk: Path,
    record_property: RecordProperty,
) -> None:
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (1024 * 1024 - 96 * 1024))  # about 300 events of room left
    env = {
        **env,
        "SPILL_DIR": str(tiny_disk / "spill"),
        "SHIP_BUFFER_MAX_EVENTS": "200",
        "SPILL_AFTER_SECONDS": "0.5",
    }
    partition.partition()
    async with tracker_process(env) as tracker:
        async with TaggedLoad(tracker.base_url, RATE) as load:
            await _wait_for_metric(
                tracker, "tracker_events_dropped_total", 1, 'reason="spill_error"'
            )
            ready = await _readyz(tracker.base_url)
            assert ready[0] == 503
            assert "the disk refused" in ready[1]["problems"]["spill"]
            filler.unlink()  # space returns
            await _wait_until_no_spill_problem(tracker.base_url)
            partition.heal()
            await asyncio.sleep(2)
        assert load.failed == 0  # every request was answered throughout
        dropped = int(await tracker.metric("tracker_events_dropped_total", 'reason="spill_error"'))
        seen = await _settled_tags(kinesalite_url, event_stream, load.answered, dropped)
        record_property("dropped", dropped)
        assert len(load.answered - seen.keys()) == dropped
        returncode, _ = await tracker.terminate(timeout=30)
        assert returncode == 0


async def _settled_tags(
    kinesalite_url: str, stream: str, answered: set[str], dropped: int
) -> Counter[str]:
    """The stream once every answered event that was not dropped has arrived."""
    seen: Counter[str] = Counter()
    with contextlib.suppress(AssertionError):
        for _ in range(120):
            seen = await tags_on_stream(kinesalite_url, stream)
            if len(answered - seen.keys()) <= dropped:
                break
            await asyncio.sleep(0.5)
    return seen


async def _wait_for_metric(
    tracker: TrackerProcess, name: str, at_least: float, labels: str = ""
) -> None:
    for _ in range(150):
        if await tracker.metric(name, labels) >= at_least:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name}{{{labels}}} stayed below {at_least}")


async def _wait_until_no_spill_problem(base_url: str) -> None:
    for _ in range(100):
        if "spill" not in (await _readyz(base_url))[1].get("problems", {}):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("/readyz still reports the disk after space returned")


async def _readyz(base_url: str) -> tuple[int, dict[str, dict[str, str]]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/readyz") as response:
        return response.status, await response.json()
