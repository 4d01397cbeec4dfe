"""Adopting the orphans of a killed process, to learn how each of them exits.

A process whose parent dies is given to the nearest ancestor that is a "child subreaper"
(prctl PR_SET_CHILD_SUBREAPER), else to init; only its new parent can wait for it and read its
exit status. While the test process is a subreaper, the children of a `tracker serve` it killed
become its own children.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
from collections.abc import Iterator
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def _set_subreaper(on: bool) -> None:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    unused = ctypes.c_ulong(0)
    result: int = prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(int(on)), unused, unused, unused)
    if result != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def children(parent: int) -> set[int]:
    """The pids of every process whose parent is `parent` (read from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after "(comm)", which may itself hold spaces.
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        if ppid == parent:
            pids.add(int(entry.name))
    return pids


@contextlib.contextmanager
def adopting_orphans(group: int) -> Iterator[set[int]]:
    """The test process as subreaper. Yields the set the test fills with the pids it expects to
    adopt; at the end, any of them still running is killed (with their process `group`) and
    every one of them is waited for, so that none is left running or a zombie."""
    adopted: set[int] = set()
    _set_subreaper(True)
    try:
        yield adopted
    finally:
        _set_subreaper(False)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        for pid in adopted:
            with contextlib.suppress(ChildProcessError):  # already waited for by the test
                os.waitpid(pid, 0)


async def exit_code(pid: int, timeout: float) -> int:
    """The exit code of an adopted child once it has exited (negative: killed by that signal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        waited, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: never blocks)
        if waited == pid:
            return os.waitstatus_to_exitcode(status)
        if loop.time() > deadline:
            raise AssertionError(f"process {pid} still runs {timeout}s after its parent died")
        await asyncio.sleep(0.05)
