"""What a test was waiting on when it ran out of time.

pytest-timeout says only that a test timed out, and its thread dump shows the event loop sitting
in select(). Shortly before a test's limit, this writes the main thread's stack and every pending
asyncio task's stack (innermost frame first, one line a task) to the terminal and to
HANG_LOG, which .ci/run prints when the tests fail: the CI log keeps only its tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType

HANG_LOG = Path(__file__).resolve().parents[2] / "build" / "test-hangs.log"
REPORT_AT = 0.9  # of the test's timeout
MAX_TASKS = 40
MAX_FRAMES = 8


def _frames(stack: list[FrameType]) -> str:
    summary = traceback.StackSummary.extract((frame, frame.f_lineno) for frame in stack)
    innermost = list(reversed(summary))[:MAX_FRAMES]
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in innermost)


def _main_thread_stack() -> str:
    main = threading.main_thread().ident
    frame = sys._current_frames().get(main) if main is not None else None
    stack: list[FrameType] = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    return _frames(list(reversed(stack)))


def _pending_tasks() -> list[str]:
    """Every unfinished task of any loop, found through the garbage collector: this runs on
    another thread, where asyncio.all_tasks() cannot be asked for the main thread's loop."""
    lines = []
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Task) and not obj.done():
            with contextlib.suppress(Exception):  # a task may finish while it is read
                lines.append(f"  task {obj.get_name()}: {_frames(obj.get_stack())}")
        if len(lines) >= MAX_TASKS:
            break
    return lines


def write_report(test: str, after: float) -> None:
    lines = [
        f"--- {test}: still running after {after:.0f}s ---",
        f"  main thread: {_main_thread_stack()}",
        *_pending_tasks(),
    ]
    text = "\n".join(lines) + "\n"
    HANG_LOG.parent.mkdir(exist_ok=True)
    with HANG_LOG.open("a", encoding="utf-8") as log:
        log.write(text)
    if sys.__stderr__ is not None:
        sys.__stderr__.write(text)


_timers: dict[str, threading.Timer] = {}


def watch(test: str, timeout: float) -> None:
    """Report `test` if it is still running at REPORT_AT of `timeout` seconds."""
    after = timeout * REPORT_AT
    timer = threading.Timer(after, write_report, args=(test, after))
    timer.daemon = True
    _timers[test] = timer
    timer.start()


def stop_watching(test: str) -> None:
    timer = _timers.pop(test, None)
    if timer is not None:
        timer.cancel()


def forget_reports() -> None:
    HANG_LOG.unlink(missing_ok=True)
