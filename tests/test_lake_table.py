"""The lake's table logic against a real local Iceberg table (SQLite catalog, file warehouse):
columns from the proto, records to rows, the exactly-once commit, schema evolution, `lake
maintain` (retention, compaction, expiry, file removal) and `lake query`'s output."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from consumers.cli import main as consumers_main
from consumers.lake import maintain as maintenance
from consumers.lake.catalog import TABLE_PROPERTIES, ensure_table, open_catalog
from consumers.lake.committer import Committer, expire_history
from consumers.lake.pending import Pending
from consumers.lake.positions import committed
from consumers.lake.query import run_query
from consumers.lake.rights import erase_user, user_rows
from consumers.lake.rows import EventRows
from consumers.lake.schema import iceberg_schema, partition_spec
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings, LakeSettings
from tracker.envconfig import SettingsError
from tracker.events.entry import Entry
from tracker.events.kpl import pack
from tracker.schema.tracking.v1 import tracking_pb2 as pb

HOUR_MS = 3_600_000
USER = "ab" * 16


@pytest.fixture
def settings(tmp_path: Path) -> LakeSettings:
    return LakeSettings(tmp_path / "lake", "adtracker.events", 1, 395)


@pytest.fixture
def catalog(settings: LakeSettings) -> Catalog:
    return open_catalog(settings)


@pytest.fixture
def table(catalog: Catalog, settings: LakeSettings) -> Table:
    return ensure_table(catalog, settings)


def event(number: int, timestamp_ms: int, **fields: object) -> pb.TrackingEvent:
    return pb.TrackingEvent(
        programid=f"p{number % 3}",
        message_id=f"{number:032x}",
        event_type=pb.CLICK,
        timestamp_ms=timestamp_ms,
        validation=pb.OK,
        consent=pb.CONSENT_GRANTED,
        ivt=pb.IVT_NONE,
        billable=True,
        params={"tag": str(number)},
        **fields,  # type: ignore[arg-type]
    )


def records(first: int, count: int, timestamp_ms: int, sequence: int = 0) -> list[StreamRecord]:
    return [
        StreamRecord(
            str(10**30 + sequence + i),
            f"{first + i:032x}",
            event(first + i, timestamp_ms + i).SerializeToString(),
        )
        for i in range(count)
    ]


def commit(table: Table, shard: str, batch: list[StreamRecord]) -> tuple[int, int]:
    pending = Pending()
    pending.add(shard, batch)
    outcome = Committer(table).commit(pending)
    return outcome.rows, outcome.copies


def ids(table: Table) -> list[str]:
    table.refresh()
    found: list[str] = table.scan().to_arrow().column("message_id").to_pylist()
    return found


def test_every_proto_field_is_a_column_and_the_table_is_hourly() -> None:
    schema = iceberg_schema()
    proto = [field.name for field in pb.TrackingEvent.DESCRIPTOR.fields]
    assert [field.name for field in schema.fields] == [*proto, "event_time"]
    assert str(schema.find_field("params").field_type) == "map<string, string>"
    assert str(schema.find_field("event_type").field_type) == "string"
    assert str(partition_spec(schema).fields[0].transform) == "hour"


def test_rows_hold_names_nulls_and_the_event_time() -> None:
    rows = EventRows()
    unknown = event(1, 1_765_000_000_123)
    unknown.event_type = 9  # type: ignore[assignment]  # a newer tracker's type
    rows.add_event(unknown, 5)
    rows.add_records([StreamRecord("6", "k", b"\xff not an event")])
    table = rows.to_arrow()
    row = table.to_pylist()[0]
    assert row["event_type"] == "9"
    assert row["validation"] == "OK"
    assert row["click_id"] is None  # an empty string is null
    assert row["params"] == [("tag", "1")]
    assert row["event_time"] == datetime(2025, 12, 6, 5, 46, 40, 123000, tzinfo=UTC)
    assert rows.skipped == 1
    assert rows.first_after(4) == 0
    assert rows.first_after(5) == 1


def test_aggregated_records_become_one_row_per_event() -> None:
    entries = [
        Entry(f"{i:032x}", event(i, 1_765_000_000_000).SerializeToString(), 1, None)
        for i in range(5)
    ]
    packed = pack(entries)
    assert len(packed) == 1
    rows = EventRows()
    rows.add_records([StreamRecord("7", packed[0].partition_key, packed[0].data)])
    assert rows.to_arrow().column("message_id").to_pylist() == [f"{i:032x}" for i in range(5)]
    assert rows.sequences == [7] * 5


def test_a_commit_stores_positions_and_leaves_out_what_is_committed(table: Table) -> None:
    now = int(time.time() * 1000)
    assert commit(table, "s0", records(0, 50, now)) == (50, 0)
    assert committed(table) == {"s0": 10**30 + 49}
    # A slower worker re-reads an overlapping range of the same shard: only the new records.
    assert commit(table, "s0", records(40, 20, now, sequence=40)) == (10, 10)
    # The same events again under other sequence numbers (a copy, another shard): no rows.
    assert commit(table, "s1", records(0, 30, now, sequence=500)) == (0, 30)
    assert committed(table) == {"s0": 10**30 + 59, "s1": 10**30 + 529}
    assert sorted(ids(table)) == [f"{i:032x}" for i in range(60)]


def test_two_tables_racing_commit_each_record_once(
    catalog: Catalog, settings: LakeSettings, table: Table
) -> None:
    now = int(time.time() * 1000)
    slow = catalog.load_table(settings.table)  # loaded before the other's commit
    assert commit(table, "s0", records(0, 30, now)) == (30, 0)
    pending = Pending()
    pending.add("s0", records(0, 40, now))
    outcome = Committer(slow).commit(pending)
    assert (outcome.rows, outcome.copies) == (10, 30)
    assert sorted(ids(table)) == [f"{i:032x}" for i in range(40)]


def test_a_new_proto_field_becomes_a_column_and_old_rows_read_null(
    catalog: Catalog, settings: LakeSettings
) -> None:
    full = iceberg_schema()
    old = Schema(*[f for f in full.fields if f.name != "original_click_id"])
    catalog.create_namespace_if_not_exists(settings.namespace)
    table = catalog.create_table(
        settings.table, old, partition_spec=partition_spec(old), properties=TABLE_PROPERTIES
    )
    now = int(time.time() * 1000)
    old_rows = EventRows()
    old_rows.add_event(event(1, now), 1)
    table.append(old_rows.to_arrow().drop_columns(["original_click_id"]))
    table = ensure_table(catalog, settings)
    assert "original_click_id" in {f.name for f in table.schema().fields}
    assert commit(table, "s0", [StreamRecord("2", "k", _with_original(2, now))]) == (1, 0)
    found = {r["message_id"]: r["original_click_id"] for r in table.scan().to_arrow().to_pylist()}
    assert found == {f"{1:032x}": None, f"{2:032x}": "c" * 32}


def _with_original(number: int, now: int) -> bytes:
    return event(number, now, original_click_id="c" * 32).SerializeToString()


def test_maintain_applies_retention_compacts_closed_hours_and_removes_old_files(
    table: Table,
) -> None:
    now = datetime.now(UTC).replace(minute=30)
    old_ms = int((now - timedelta(days=400)).timestamp() * 1000)
    closed_ms = int((now - timedelta(hours=5)).replace(minute=0).timestamp() * 1000)
    commit(table, "s0", records(0, 10, old_ms))
    for chunk in range(5):  # five commits, five small files in one closed hour
        commit(table, "s0", records(100 + 10 * chunk, 10, closed_ms, sequence=100 + 10 * chunk))
    positions = committed(table)
    files_before = _parquet_files(table)
    report = maintenance.maintain(table, retention_days=395, now=now)
    assert report.rows_expired == 10
    assert report.hours_compacted == 1
    assert report.snapshots_expired >= 7
    assert committed(table) == positions  # maintenance carries the stream positions forward
    assert sorted(ids(table)) == [f"{100 + i:032x}" for i in range(50)]
    live = {Path(t.file.file_path.removeprefix("file://")) for t in table.scan().plan_files()}
    assert len(live) == 1
    assert _parquet_files(table) == live  # every other data file removed from disk
    assert not files_before & live
    assert maintenance.maintain(table, retention_days=395, now=now).files_removed == 0


def test_maintain_keeps_a_young_file_no_snapshot_references_yet(table: Table) -> None:
    commit(table, "s0", records(0, 5, int(time.time() * 1000)))
    folder = next(iter(_parquet_files(table))).parent
    in_flight = folder / "in-flight.parquet"  # what a worker writes just before its commit
    in_flight.write_bytes(b"PAR1")
    old_orphan = folder / "failed-commit.parquet"
    old_orphan.write_bytes(b"PAR1")
    an_hour_ago = time.time() - 3600
    os.utime(old_orphan, (an_hour_ago, an_hour_ago))
    maintenance.maintain(table, retention_days=395)
    assert in_flight.exists()
    assert not old_orphan.exists()


def _parquet_files(table: Table) -> set[Path]:
    root = Path(table.location().removeprefix("file://"))
    return set(root.rglob("*.parquet"))


def test_erase_and_export_see_only_the_user(table: Table) -> None:
    now = int(time.time() * 1000)
    batch = [
        StreamRecord(
            str(i), "k", event(i, now + i, user_key=USER if i % 2 else "").SerializeToString()
        )
        for i in range(1, 11)
    ]
    commit(table, "s0", batch)
    exported = user_rows(table, USER)
    assert [r["message_id"] for r in exported] == [f"{i:032x}" for i in (1, 3, 5, 7, 9)]
    assert exported[0]["params"] == {"tag": "1"}
    assert erase_user(table, USER) == 5
    assert erase_user(table, USER) == 0
    assert user_rows(table, USER) == []
    assert len(ids(table)) == 5
    with pytest.raises(ValueError, match="not a user key"):
        erase_user(table, "x' OR '1' = '1")


def test_query_prints_json_and_csv_and_sees_no_deleted_rows(table: Table) -> None:
    now = 1_765_000_000_000
    commit(table, "s0", records(0, 4, now))
    table.delete("message_id == '00000000000000000000000000000003'")
    out = io.StringIO()
    sql = "SELECT message_id, event_time, params FROM events ORDER BY message_id"
    assert run_query(table, sql, "json", out) == 3
    rows = json.loads(out.getvalue())
    assert rows[0] == {
        "message_id": "0" * 32,
        "event_time": "2025-12-06T05:46:40+00:00",
        "params": {"tag": "0"},
    }
    out = io.StringIO()
    run_query(table, "SELECT count(*) AS n, sum(billable::INT) AS b FROM events", "csv", out)
    assert list(csv.DictReader(io.StringIO(out.getvalue()))) == [{"n": "3", "b": "3"}]


def test_query_of_an_empty_table_and_a_bad_query(
    table: Table,
    settings: LakeSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    assert run_query(table, "SELECT count(*) AS n FROM events", "json", out) == 1
    assert json.loads(out.getvalue()) == [{"n": 0}]
    monkeypatch.setenv("LAKE_DIR", str(settings.directory))
    assert consumers_main(["lake", "query", "SELEKT nonsense"]) == 2
    assert "consumers lake query:" in capsys.readouterr().err
    monkeypatch.setenv("LAKE_TABLE", "adtracker.missing")
    assert consumers_main(["lake", "maintain"]) == 1
    assert "run `consumers init` first" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LAKE_TABLE", "events"),
        ("LAKE_TABLE", "a.b.c"),
        ("LAKE_COMMIT_SECONDS", "0"),
        ("LAKE_RETENTION_DAYS", "0"),
        ("EVENTS_TABLE_TYPES", "CLICK,PURCHASE"),
        ("EVENTS_TABLE_TYPES", " , "),
    ],
)
def test_bad_lake_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        ConsumerSettings.from_env({name: value})


def test_events_table_types_are_read_by_name() -> None:
    settings = ConsumerSettings.from_env({"EVENTS_TABLE_TYPES": "CLICK, CONVERSION"})
    assert settings.events_table_types == {pb.CLICK, pb.CONVERSION}


def test_a_worker_expires_old_history_but_keeps_rows_and_positions(table: Table) -> None:
    now = int(time.time() * 1000)
    for chunk in range(4):
        commit(table, "s0", records(10 * chunk, 10, now, sequence=10 * chunk))
    table.refresh()
    assert len(table.snapshots()) == 4
    positions = committed(table)
    assert expire_history(table, time.time() - 3600) == 0  # none is an hour old
    assert expire_history(table, time.time() + 1) == 3  # all but the current one
    table.refresh()
    assert len(table.snapshots()) == 1
    assert committed(table) == positions
    assert sorted(ids(table)) == [f"{i:032x}" for i in range(40)]


def test_one_worker_drops_copies_of_any_hour_it_committed_or_forgot(table: Table) -> None:
    """Copies keep their original's time: a worker that has committed three hours (and keeps
    the ids of the newest two in memory) still drops a copy of the first (read again)."""
    committer = Committer(table)
    base = int(time.time() * 1000) - 5 * HOUR_MS
    for hour in range(3):
        pending = Pending()
        pending.add("s0", records(100 * hour, 20, base + hour * HOUR_MS, sequence=100 * hour))
        assert committer.commit(pending).rows == 20
    copies = Pending()  # the same events on another shard: the first hour's and the last's
    copies.add("s1", records(0, 5, base) + records(200, 5, base + 2 * HOUR_MS, sequence=200))
    outcome = committer.commit(copies)
    assert (outcome.rows, outcome.copies) == (0, 10)
    assert len(ids(table)) == 60
