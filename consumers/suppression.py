"""Which user keys are suppressed: one BatchGetItem per batch on PRIVACY_TABLE, with a cache.

A batch's distinct user keys are looked up together (consistent reads, 100 keys a call), never
one per event, and a batch without user keys costs nothing. A "suppressed" answer is kept for
good (suppression is permanent); a "not suppressed" one for SUPPRESSION_CACHE_SECONDS, which is
how late after an erase or restrict a worker can still store that user's events.

Each answer remembers when its read was sent: an event admitted on an answer is safe only if it
is written within the cache time of that moment (erase waits that long before its second pass).
`Verdict.stale` tells the processor when a write took longer, so it can ask again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, NamedTuple, cast

from consumers.metrics import ConsumerMetrics
from consumers.privacy_table import marker_key
from consumers.retrying import until_processed, with_retries
from consumers.settings import PrivacySettings
from tracker.memo import BoundedMemo

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
    )

BATCH_GET_LIMIT = 100  # DynamoDB BatchGetItem limit
# Bounds on memory; a full memo forgets everything and the next batches simply ask again.
MAX_SUPPRESSED = 200_000
MAX_CLEAR = 200_000


class Verdict(NamedTuple):
    suppressed: frozenset[str]
    # When the oldest "not suppressed" answer relied on was sent (clock time); None if none was.
    oldest_clear: float | None


class SuppressionList:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        privacy: PrivacySettings,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """The markers are in `privacy.table`; a "not suppressed" answer is trusted for
        `privacy.suppression_cache_seconds`."""
        self._dynamodb = dynamodb
        self._table = privacy.table
        self._cache_seconds = privacy.suppression_cache_seconds
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._clock = clock
        self._suppressed: BoundedMemo[str, None] = BoundedMemo(MAX_SUPPRESSED)
        self._clear_since: BoundedMemo[str, float] = BoundedMemo(MAX_CLEAR)  # key -> read sent

    async def check(self, user_keys: Collection[str], fresh: bool = False) -> Verdict:
        """The verdict on these keys; `fresh` ignores cached "not suppressed" answers."""
        now = self._clock()
        suppressed: set[str] = set()
        clear_since: dict[str, float] = {}  # this verdict's own copy: the memo may be cleared
        missing: list[str] = []
        for key in user_keys:
            since = None if fresh else self._clear_since.get(key)
            if key in self._suppressed:
                suppressed.add(key)
            elif since is not None and now - since < self._cache_seconds:
                clear_since[key] = since
            else:
                missing.append(key)
        if missing:
            found = await self._look_up(missing)
            for key in missing:
                if key in found:
                    suppressed.add(key)
                    self._suppressed.remember(key, None)
                    self._clear_since.pop(key, None)
                else:
                    clear_since[key] = self._clear_since.remember(key, now)
        return Verdict(frozenset(suppressed), min(clear_since.values(), default=None))

    def stale(self, verdict: Verdict) -> bool:
        """True when a "not suppressed" answer of the verdict is older than the cache time."""
        oldest = verdict.oldest_clear
        return oldest is not None and self._clock() - oldest > self._cache_seconds

    async def _look_up(self, keys: list[str]) -> set[str]:
        chunks = [keys[n : n + BATCH_GET_LIMIT] for n in range(0, len(keys), BATCH_GET_LIMIT)]
        self._metrics.suppression_lookups.inc(len(keys))
        found = await asyncio.gather(*(self._look_up_chunk(chunk) for chunk in chunks))
        return set().union(*found)

    async def _look_up_chunk(self, keys: list[str]) -> set[str]:
        found: set[str] = set()

        async def step(request: KeysAndAttributesTypeDef) -> KeysAndAttributesTypeDef | None:
            answer = await with_retries(
                lambda: self._dynamodb.batch_get_item(RequestItems={self._table: request}),
                "suppression lookup",
                self._max_attempts,
                self._metrics.write_errors.inc,
            )
            found.update(_user_keys(answer.get("Responses", {}).get(self._table, [])))
            left = answer.get("UnprocessedKeys", {}).get(self._table)
            return cast("KeysAndAttributesTypeDef", left) if left and left.get("Keys") else None

        first: KeysAndAttributesTypeDef = {
            "Keys": [marker_key(k) for k in keys],
            "ConsistentRead": True,  # a marker written a moment ago must be seen
            "ProjectionExpression": "user_key",
        }
        await until_processed(step, first, "suppression lookup", self._max_attempts)
        return found


def _user_keys(items: Iterable[dict[str, AttributeValueTypeDef]]) -> set[str]:
    return {item["user_key"]["S"] for item in items}
