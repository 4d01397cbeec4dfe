"""Applying program updates to Redis: version-checked and published in one atomic script.

Used by `tracker programs load` and by the program-updates consumer. The check and the write run
in one Lua script so that two writers can never interleave, and the PUBLISH happens in the same
step so that subscribers see changes in the order Redis applied them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as redis

from tracker.programs.model import Program, ProgramUpdate

KEY_PREFIX = "program:"
TOMBSTONE_TTL_SECONDS = 7 * 24 * 3600

# Versions are compared as decimal strings (length first) because Lua numbers are doubles and
# would round versions above 2**53.
_APPLY_SCRIPT = """
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
-- ARGV: version, mode, tombstone ttl, channel, message, field, value, ...
local current = redis.call('HGET', KEYS[1], 'version')
if current and not newer(ARGV[1], current) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[2] == 'delete' then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3])) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""


def program_key(program_id: str) -> str:
    return KEY_PREFIX + program_id


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int = 0
    skipped: int = 0


class ProgramWriter:
    """Writes updates to Redis if their version is newer, publishing each applied one."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._client = client
        self._channel = channel
        self._script = client.register_script(_APPLY_SCRIPT)

    async def apply(self, update: ProgramUpdate) -> bool:
        """True when Redis took the update, False when it already held this version or newer."""
        message = json.dumps(update.to_json(), separators=(",", ":"))
        if isinstance(update, Program):
            fields = update.to_redis_hash()
            mode, ttl = "upsert", "0"
        else:
            fields = {
                "program_id": update.program_id,
                "deleted": "true",
                "version": str(update.version),
            }
            mode, ttl = "delete", str(TOMBSTONE_TTL_SECONDS)
        flat = [item for pair in fields.items() for item in pair]
        args = [str(update.version), mode, ttl, self._channel, message, *flat]
        result = await self._script(keys=[program_key(update.program_id)], args=args)
        return bool(result)

    async def apply_all(self, updates: list[ProgramUpdate]) -> ApplyResult:
        applied = 0
        for update in updates:
            applied += await self.apply(update)
        return ApplyResult(applied=applied, skipped=len(updates) - applied)
