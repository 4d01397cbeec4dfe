"""The push subscriber: program changes published on PROGRAM_CHANNEL, applied to L1.

Pub/sub drops whatever is published while a subscriber is disconnected, and redis-py reconnects
short outages silently. So every subscribe confirmation, the first and each after a reconnect,
triggers a resync: every cached program is read again from Redis. Messages that arrive during the
resync wait in the socket and are applied after it, so they can only be newer than what it read.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from tracker.backoff import backoff_delay
from tracker.metrics import TrackerMetrics
from tracker.programs.model import ProgramFormatError, parse_update_json
from tracker.validation.validator import MissResolver

log = logging.getLogger(__name__)

RESYNC_CHUNK = 1000


class PushSubscriber:
    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        resolver: MissResolver,
        metrics: TrackerMetrics,
    ) -> None:
        """Pushed changes go into the resolver's cache, and a resync reads its store."""
        self._client = client
        self._channel = channel
        self._cache = resolver.cache
        self._store = resolver.store
        self._resolver = resolver
        self._metrics = metrics
        self.live = False
        self._failures = 0  # since the subscription was last live: drives the backoff

    async def run(self) -> None:
        """Subscribe, and subscribe again after any failure, until cancelled."""
        while True:
            try:
                await self._session()
            except (RedisError, OSError) as exc:
                self._failures += 1
                self._set_live(False)
                log.warning(
                    "program subscription lost, retrying",
                    extra={"error": str(exc) or type(exc).__name__, "attempt": self._failures},
                )
            await asyncio.sleep(backoff_delay(self._failures))

    async def _session(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    await self._handle(message)
        finally:
            self._set_live(False)
            await pubsub.aclose()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "subscribe":
            await self.resync()
            self._set_live(True)
            log.info("program subscription live", extra={"channel": self._channel})
        elif kind == "message":
            self.apply(message["data"])

    def apply(self, data: bytes) -> None:
        try:
            update = parse_update_json(data)
        except ProgramFormatError as exc:
            self._metrics.updates_malformed.inc()
            log.warning("malformed program update ignored", extra={"error": str(exc)})
            return
        self._resolver.invalidate(update.program_id)
        if self._cache.apply(update):
            self._metrics.updates_applied.inc()
        else:
            self._metrics.updates_ignored.inc()

    async def resync(self) -> None:
        """Read every cached program from Redis again; forget what we knew to be absent."""
        self._resolver.invalidate_all()
        program_ids = self._cache.program_ids()
        self._cache.clear_absent()
        for start in range(0, len(program_ids), RESYNC_CHUNK):
            chunk = program_ids[start : start + RESYNC_CHUNK]
            for program_id, found in (await self._store.fetch_many(chunk)).items():
                self._cache.put(found, program_id)
        self._metrics.resyncs.inc()
        log.info("program cache resynced", extra={"programs": len(program_ids)})

    def _set_live(self, live: bool) -> None:
        self.live = live
        if live:
            self._failures = 0
        self._metrics.subscription_up.set(1 if live else 0)
