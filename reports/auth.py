"""Who is asking: the bearer key of a `/v1/` request, checked against REPORT_KEYS_TABLE.

Looked-up keys are cached for KEY_CACHE_SECONDS (5 s): a revoked key stops working within that
time in every `reports serve` process, while a busy dashboard costs one GetItem per key every
5 s, not one per request. Unknown key ids are cached as unknown for as long, so a client
repeating a bad key costs no read per request; concurrent requests for one uncached id share
one read. The cache is bounded: past MAX_CACHED_KEYS the oldest entries go.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reports.keys import ReportKey, digest, key_id_of

KEY_CACHE_SECONDS = 5.0
MAX_CACHED_KEYS = 10_000
# A key is 60 characters; anything much longer is not one, and is not worth parsing.
MAX_AUTHORIZATION = 256


class KeyLookup(Protocol):
    async def lookup(self, key_id: str) -> ReportKey | None: ...


class AuthError(Exception):
    """401. `token_given`: a bearer token was sent (and is invalid), so the challenge says
    error="invalid_token"; otherwise the request carried no bearer token at all."""

    def __init__(self, token_given: bool) -> None:
        super().__init__("invalid_token" if token_given else "no bearer token")
        self.token_given = token_given

    def challenge(self) -> str:
        return 'Bearer error="invalid_token"' if self.token_given else "Bearer"


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; AuthError when there is none."""
    if not authorization:
        raise AuthError(token_given=False)
    if len(authorization) > MAX_AUTHORIZATION:
        raise AuthError(token_given=True)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(token_given=False)
    token = token.strip()
    if not token:  # the scheme alone: no credentials, as if none were sent
        raise AuthError(token_given=False)
    return token


@dataclass(frozen=True, slots=True)
class _Cached:
    key: ReportKey | None
    expires: float


class KeyVerifier:
    """Checks key texts against the store, with a short cache of what it read."""

    def __init__(
        self,
        store: KeyLookup,
        ttl: float = KEY_CACHE_SECONDS,
        max_entries: int = MAX_CACHED_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._pending: dict[str, asyncio.Task[ReportKey | None]] = {}

    async def verify(self, token: str) -> ReportKey:
        """The valid, unrevoked key whose text is `token`; AuthError otherwise. UnavailableError
        when the store cannot say."""
        key_id = key_id_of(token)
        if key_id is None:
            raise AuthError(token_given=True)
        key = await self._key(key_id)
        # The whole text's hash, compared in constant time: the id alone proves nothing.
        if key is None or not hmac.compare_digest(digest(token), key.secret_sha256):
            raise AuthError(token_given=True)
        if key.revoked_ms is not None:
            raise AuthError(token_given=True)
        return key

    async def _key(self, key_id: str) -> ReportKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and cached.expires > self._clock():
            return cached.key
        pending = self._pending.get(key_id)
        if pending is None:
            pending = asyncio.create_task(self._read(key_id), name="report-key-lookup")
            self._pending[key_id] = pending
            pending.add_done_callback(lambda task: self._settled(key_id, task))
        # Shielded: one request giving up must not cancel the read the others wait on.
        return await asyncio.shield(pending)

    async def _read(self, key_id: str) -> ReportKey | None:
        key = await self._store.lookup(key_id)
        self._remember(key_id, key)
        return key

    def _settled(self, key_id: str, task: asyncio.Task[ReportKey | None]) -> None:
        self._pending.pop(key_id, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    def _remember(self, key_id: str, key: ReportKey | None) -> None:
        now = self._clock()
        if len(self._cache) >= self._max_entries:
            self._cache = {k: c for k, c in self._cache.items() if c.expires > now}
        while len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]  # the oldest: dicts keep insertion order
        self._cache.pop(key_id, None)
        self._cache[key_id] = _Cached(key, now + self._ttl)

    def forget(self) -> None:
        """Drop every cached key (tests; an operator's revocation needs no call here)."""
        self._cache.clear()
