"""Program fixtures for tests, written to a real Redis the way `tracker programs load` does."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from tracker.programs.model import ProgramUpdate, parse_update
from tracker.programs.redis_writer import ProgramWriter

NOW = 1_900_000_000  # well inside the open windows below, well after the closed ones


def program(program_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "program_id": program_id,
        "program_name": f"Program {program_id}",
        "customer_id": 42,
        "customer_name": "Customer 42",
        "checksum": f"sum-{program_id}",
        "valid": True,
        "version": 1,
        "landing_url": f"https://example.com/{program_id}",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


STANDARD = [
    program("live"),
    program("live-no-url", landing_url=None),
    program("off", valid=False),
    program("expired", valid_from=1_000, valid_until=2_000),
    program("future", valid_from=4_000_000_000),
]


async def write_programs(
    redis_url: str, programs: list[dict[str, Any]], channel: str = "program-updates"
) -> int:
    updates: list[ProgramUpdate] = [parse_update(p) for p in programs]
    client = redis.Redis.from_url(redis_url)
    try:
        return (await ProgramWriter(client, channel).apply_all(updates)).applied
    finally:
        await client.aclose()
