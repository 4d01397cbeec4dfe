"""Stopping background tasks at shutdown, even those whose libraries swallow a cancellation.

`task.cancel()` then `await gather(task)` hangs for ever if the task goes on running. redis-py
(8.1) does that now and then: a cancellation that lands while a command is under way, inside
the caller's own `asyncio.timeout`, comes out as a normal return or a TimeoutError, and a
retrying loop (the Redis probe, the push subscriber, a consumer's reader) carries on. Seen as a
tracker that never finished its shutdown, and reproduced in tests/test_task_stop.py. So a task
still running after a cancellation is cancelled again, until it stops or `patience` runs out;
its next await (a loop's sleep) takes the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_SECONDS = 0.05
STOP_PATIENCE_SECONDS = 5.0


async def stop_tasks(
    tasks: Iterable[asyncio.Task[Any]], patience: float = STOP_PATIENCE_SECONDS
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait until every one is done, cancelling again those that go on.
    Returns the tasks still running after `patience` seconds (logged): the shutdown goes on
    without them. Their exceptions are retrieved, as gather(return_exceptions=True) would."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    running = {task for task in tasks if not task.done()}
    everything = set(running)
    while running:
        for task in running:
            task.cancel()
        wait = min(RECANCEL_SECONDS, deadline - loop.time())
        if wait <= 0:
            break
        _, running = await asyncio.wait(running, timeout=wait)
    for task in everything - running:
        if not task.cancelled():
            task.exception()  # retrieved: a crash is logged by whoever started the task
    if running:
        log.error(
            "tasks did not stop when cancelled",
            extra={"tasks": sorted(task.get_name() for task in running), "seconds": patience},
        )
    return running
