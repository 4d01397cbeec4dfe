"""The lake's files: which the current snapshot references, and which are in the warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pyarrow import fs
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot


@dataclass(frozen=True, slots=True)
class StoredFile:
    location: str
    modified_seconds: float  # epoch seconds


def referenced(table: Table, snapshot: Snapshot | None) -> set[str]:
    """Every file a snapshot needs: its manifest list, manifests, data and delete files."""
    if snapshot is None:
        return set()
    files = {snapshot.manifest_list}
    for manifest in snapshot.manifests(table.io):
        files.add(manifest.manifest_path)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            files.add(entry.data_file.file_path)
    return files


def stored(table: Table) -> Iterator[StoredFile]:
    """Every file under the table's location (data/ and metadata/)."""
    filesystem, root, prefix = _filesystem(table)
    selector = fs.FileSelector(root, recursive=True, allow_not_found=True)
    for info in filesystem.get_file_info(selector):
        if info.type == fs.FileType.File:
            modified = info.mtime.timestamp() if info.mtime else 0.0
            yield StoredFile(prefix + info.path, modified)


def opened_paths(table: Table, locations: list[str]) -> tuple[fs.FileSystem, list[str]]:
    """The file system of the table's files and their paths on it (for Arrow datasets)."""
    filesystem, _, _ = _filesystem(table)
    paths = [table.io.parse_location(location)[2] for location in locations]  # type: ignore[attr-defined]
    return filesystem, paths


def _filesystem(table: Table) -> tuple[fs.FileSystem, str, str]:
    """The table location's file system, the path to list, and what turns a listed path back
    into a location as the table's metadata writes it."""
    location = table.location().rstrip("/")
    scheme, netloc, path = table.io.parse_location(location)  # type: ignore[attr-defined]
    filesystem: fs.FileSystem = table.io.fs_by_scheme(scheme, netloc)  # type: ignore[attr-defined]
    prefix = "file://" if scheme == "file" and location.startswith("file:") else ""
    if scheme not in ("file", ""):
        prefix = f"{scheme}://"
    return filesystem, path, prefix
