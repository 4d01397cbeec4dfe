"""The duplicate-click check's own work in process, through the tracker's Redis client to a real
redis-server: what bench/integrity_cost.py reports with --redis-url, and bench.run inside its
stack.

Clicks are handed over as the handler hands them after their answers (`submit`), IN_FLIGHT at a
time (the HTTP cases' concurrency), and checked by the flusher in pipelines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import uvloop

from bench.browser import ADDRESS, USER_AGENT
from bench.demo_programs import DEMO_PROGRAM_ID
from bench.micro import per_call
from bench.privacy_inputs import DAY, fixed_secrets
from bench.user_agents import fresh
from tracker.core import _request_path_client  # the tracker's own request-path client
from tracker.integrity.duplicates import UNCHECKED, DuplicateClicks
from tracker.settings import TrackerSettings

IN_FLIGHT = 100  # duplicate checks pending at once against Redis: the HTTP cases' concurrency
WINDOW_SECONDS = 30  # DUPLICATE_CLICK_SECONDS' default
MAX_UNCHECKED_SHARE = 20  # at most one click in this many may go unchecked (a slow pipeline)


def duplicate_check_redis(redis_url: str, calls: int) -> Callable[[], float]:
    """A repetition: the CPU this process spends per click (time.process_time: the key, the
    client's work and the hand-back, not Redis's), `calls` clicks of distinct user agents."""
    settings = TrackerSettings.from_env({"REDIS_URL": redis_url})
    agents = fresh(USER_AGENT, calls)

    async def run() -> float:
        client = _request_path_client(settings)
        clicks = DuplicateClicks[str](
            client, fixed_secrets(), WINDOW_SECONDS, settings.redis_timeout_seconds
        )
        handed_back: list[bool] = []
        clicks.on_checked = lambda _click, found: handed_back.append(found is not None)
        flusher = asyncio.create_task(clicks.run())
        try:
            await _submit_all(clicks, agents[:IN_FLIGHT])  # untimed: the pool connects
            clicks.results = dict.fromkeys(clicks.results, 0)
            started = time.process_time()
            await _submit_all(clicks, agents)
            elapsed = time.process_time() - started
        finally:
            flusher.cancel()
            await client.aclose()
        assert len(handed_back) == IN_FLIGHT + calls
        # A pipeline over REDIS_TIMEOUT_MS gives up (unchecked): few may, here.
        assert clicks.results[UNCHECKED] <= calls // MAX_UNCHECKED_SHARE, clicks.results
        return per_call(elapsed, calls)

    return lambda: uvloop.run(run())


async def _submit_all(clicks: DuplicateClicks[str], agents: Sequence[str]) -> None:
    """IN_FLIGHT clicks handed over at a time, each batch settled before the next."""
    for first in range(0, len(agents), IN_FLIGHT):
        for agent in agents[first : first + IN_FLIGHT]:
            clicks.submit(agent, DEMO_PROGRAM_ID, ADDRESS, agent, DAY)
        await clicks.settle()
