"""Before a consumer reads its first record: are the tables it uses keyed as this version needs?

An events table of the old key (`program_id`) takes this version's writes without a word (its
items carry `program_id` and `event_key` too), and the stream is checkpointed past them; only
later do `consumers show` and `consumers privacy export|erase` fail on that table. A missing table
fails every write, retried for ever, while the consumer looks healthy. So every consumer runs the
check of `consumers init` (consumers/provision.py: one DescribeTable a table) once when it starts,
and refuses to run with its one-line message: the worker exits, the Lambda invocation fails (the
event source mapping retries it), `consumers redrive` stops with the message kept.

Which tables: those the consumer writes or reads by key. The dead-letter table for both kinds;
for events also the events table (written, and deleted from for late suppressions) and the
privacy table (its suppression markers are read by key before every write); the lease table for
a worker (Lambda's event source mapping keeps its own checkpoints).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial
from typing import TYPE_CHECKING

from consumers.aws import open_dynamodb
from consumers.provision import check_key_schema, table_specs
from consumers.retrying import with_retries
from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

    from consumers.processors import Kind


def tables_used(settings: ConsumerSettings, kind: Kind, leases: bool) -> list[str]:
    """The tables a consumer of `kind` writes or reads by key; `leases`: a worker's lease table.
    The events table first: it is the one an upgrade in place leaves with the old key."""
    events = [
        settings.events_table,
        settings.privacy.table,
        settings.rollup_table,
        settings.attribution.table,
    ]
    names = events if kind == "events" else []
    names.append(settings.dead_letter_table)
    if leases:
        names.append(settings.lease_table)
    return list(dict.fromkeys(names))  # one check for a table named twice


async def check_tables(
    dynamodb: DynamoDBClient,
    settings: ConsumerSettings,
    names: list[str],
    max_attempts: int,
) -> None:
    """Raise UnusableTableError for the first table missing or keyed otherwise; a DescribeTable
    that fails (throttled, no connection) is retried up to max_attempts, then its error raised."""
    specs = table_specs(settings)
    for name in names:
        check = partial(check_key_schema, dynamodb, name, specs[name]["KeySchema"])
        await with_retries(check, f"key check of table {name}", max_attempts)


class TableCheck:
    """For the Lambda handlers and redrive: each kind's tables checked once, when first needed,
    on a client of its own (their processors keep theirs to themselves). A check that raised is
    not remembered: the next call checks again."""

    def __init__(self, settings: ConsumerSettings, max_attempts: int) -> None:
        self.settings = settings
        self._max_attempts = max_attempts
        self._passed: set[Kind] = set()

    async def ensure(self, kind: Kind) -> None:
        if kind in self._passed:
            return
        async with AsyncExitStack() as stack:
            dynamodb = await open_dynamodb(self.settings, stack)
            names = tables_used(self.settings, kind, leases=False)
            await check_tables(dynamodb, self.settings, names, self._max_attempts)
        self._passed.add(kind)
