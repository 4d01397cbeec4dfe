"""CPU time and memory of a process tree, read from /proc (Linux)."""

from __future__ import annotations

import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            found.extend(tree(int(child)))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process tree so far."""
    total = 0
    for member in tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def idle_cpu_per_second(pids: list[int], seconds: float = 3.0) -> list[float]:
    """CPU seconds per second of each process tree over `seconds` in which it has nothing to do
    (polls, renewals, timers): what to subtract from a measurement of work."""
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(seconds)
    return [(cpu_seconds(pid) - b) / seconds for pid, b in zip(pids, before, strict=True)]


def rss_mb(pid: int) -> float:
    """Resident memory of the process tree, in MB."""
    return memory_kb(pid, "VmRSS") / 1024


def memory_kb(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM), added up over the process tree."""
    total_kb = 0
    for member in tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total_kb += int(line.split()[1])
    return total_kb
