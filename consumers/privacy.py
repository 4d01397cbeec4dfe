"""`consumers privacy export|erase|restrict`: a data subject's rights over the stored events.

The person is named by the advertiser's user id, and the command line turns it at once into its
keyed hash (`user_key` under USER_ID_KEY, as the tracker computes it). Everything here works on
that key: it finds the events through the events table's `user_key-index`, and it keys the
suppression marker and the audit records in PRIVACY_TABLE. The id itself is never stored,
logged or put in an error message.

- export: every stored event of the user, as `consumers show` renders items, then the user's
  rows of the event lake that are not items (`"stored_in": "lake"`; with EVENTS_TABLE_TYPES
  short, impressions live only there).
- restrict: the suppression marker only; the events consumers stop storing the user's events,
  those already stored stay.
- erase: suppress, then delete everything, in this order:

  1. write the marker;
  2. delete every item the index lists for the user, and the attribution table's click and
     parked records of those events (consumers/attribution/erasure.py);
  3. wait SUPPRESSION_CACHE_SECONDS + ERASE_MARGIN_SECONDS;
  4. delete again; the result is the number of distinct items deleted by both passes.

  The lake's rows of the user are deleted in both passes too (consumers/lake/rights.py; the
  lake workers check the same markers before each commit), and are gone from every file after
  the next `consumers lake maintain`.

  Step 3 closes a race. A worker may have read "not suppressed" just before step 1, or still
  trust that answer from its cache, and store the user's events after step 2 has passed them.
  Such an answer is trusted for at most SUPPRESSION_CACHE_SECONDS from when it was asked, and a
  worker whose write outlasts that asks again and deletes what it stored itself (see
  consumers/events_processor.py), so every late write has landed by then. The index is
  eventually consistent: the margin gives it time to list those late items, and step 4 finds
  them. After step 4 nothing of the user is stored, and nothing will be.

Each operation ends by writing its audit record (operation, time, count).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NamedTuple

from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from consumers.attribution.erasure import AttributionRecords
from consumers.aws import open_clients
from consumers.lake.catalog import open_catalog, open_table
from consumers.lake.rights import erase_user, user_rows
from consumers.privacy_table import PrivacyTable
from consumers.settings import ConsumerSettings
from consumers.show import item_json
from consumers.user_items import UserItems, key_id

# A command is run by a person who can run it again: fail after a few attempts, do not hang.
ATTEMPTS = 5


class Privacy(NamedTuple):
    table: PrivacyTable
    items: UserItems
    settle_seconds: float  # erase's wait between its two passes
    attribution: AttributionRecords  # the click and parked records of the user's events
    lake: Table | None = None  # the event lake's table; None where `consumers init` has not made it


@asynccontextmanager
async def opened(settings: ConsumerSettings) -> AsyncIterator[Privacy]:
    privacy = settings.privacy
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        yield Privacy(
            PrivacyTable(dynamodb, privacy.table, privacy.audit_ttl_days, ATTEMPTS),
            UserItems(dynamodb, settings.events_table, ATTEMPTS),
            privacy.suppression_cache_seconds + privacy.erase_margin_seconds,
            AttributionRecords(dynamodb, settings.attribution.table, ATTEMPTS),
            await asyncio.to_thread(_lake_table, settings),
        )


def _lake_table(settings: ConsumerSettings) -> Table | None:
    try:
        return open_table(open_catalog(settings.lake), settings.lake)
    except NoSuchTableError:
        return None


async def export(privacy: Privacy, user_key: str, emit: Callable[[dict[str, Any]], None]) -> int:
    """Hand every stored event of the user to `emit`, oldest first; return how many."""
    count = 0
    exported: set[str] = set()
    async for keys in privacy.items.key_pages(user_key):
        for item in await privacy.items.fetch(keys):
            event = item_json(item)
            exported.add(str(event.get("message_id")))
            emit(event)
            count += 1
    if privacy.lake is not None:
        for row in await asyncio.to_thread(user_rows, privacy.lake, user_key):
            if row["message_id"] not in exported:
                emit({**row, "stored_in": "lake"})
                count += 1
    await privacy.table.audit(user_key, "export", count)
    return count


async def erase(privacy: Privacy, user_key: str) -> int:
    """Suppress the user, delete every stored event of theirs; return how many were deleted."""
    await privacy.table.suppress(user_key, "erase")
    deleted: set[tuple[str, str]] = set()
    await _delete_listed(privacy, user_key, deleted)
    lake_rows = await _erase_from_lake(privacy, user_key)
    await asyncio.sleep(privacy.settle_seconds)  # see the module docstring
    await _delete_listed(privacy, user_key, deleted)
    lake_rows += await _erase_from_lake(privacy, user_key)
    await privacy.table.audit(user_key, "erase", len(deleted) + lake_rows)
    return len(deleted) + lake_rows


async def _erase_from_lake(privacy: Privacy, user_key: str) -> int:
    if privacy.lake is None:
        return 0
    return await asyncio.to_thread(erase_user, privacy.lake, user_key)


async def restrict(privacy: Privacy, user_key: str) -> None:
    """Suppress the user: later events are not stored; stored ones stay."""
    await privacy.table.suppress(user_key, "restrict")
    await privacy.table.audit(user_key, "restrict", 0)


async def _delete_listed(privacy: Privacy, user_key: str, deleted: set[tuple[str, str]]) -> None:
    """Delete what the index lists now; `deleted` collects the keys (a lagging index may list
    an item the first pass deleted already: it is counted once)."""
    async for keys in privacy.items.key_pages(user_key):
        await privacy.items.delete(keys)
        await privacy.attribution.delete_for(keys)
        deleted.update(map(key_id, keys))
