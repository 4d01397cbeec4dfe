"""A data subject's rights over the lake: export their rows, erase them.

Erasure deletes the rows in a copy-on-write commit (the files holding them are rewritten
without them); the old files stay on disk until `consumers lake maintain` expires the snapshots
that reference them and removes them (docs/privacy.md). Every file is read to find the rows:
the manifests keep no bounds of personal columns (consumers/lake/catalog.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pyiceberg.table import Table

from consumers.lake.table_commits import delete_where

_USER_KEY = re.compile(r"[0-9a-f]{32}")


def user_rows(table: Table, user_key: str) -> list[dict[str, Any]]:
    """The user's rows as plain JSON values, oldest first."""
    table.refresh()
    rows = table.scan(row_filter=_of_user(user_key)).to_arrow().sort_by("event_time")
    return [{name: _plain(value) for name, value in row.items()} for row in rows.to_pylist()]


def erase_user(table: Table, user_key: str) -> int:
    """Delete the user's rows; the number deleted."""
    return delete_where(table, _of_user(user_key))


def _of_user(user_key: str) -> str:
    # The key is our own hash, checked anyway: it goes into a filter expression.
    if not _USER_KEY.fullmatch(user_key):
        raise ValueError("not a user key")
    return f"user_key == '{user_key}'"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):  # a map's entries
        return dict(value)
    return value
