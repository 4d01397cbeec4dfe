"""Reading program files: a JSON array of program objects or deletions, checked before any write."""

from __future__ import annotations

import json
from pathlib import Path

from tracker.programs.model import ProgramFormatError, ProgramUpdate, parse_update

MAX_FILE_BYTES = 64 * 1024 * 1024


def read_program_file(path: Path) -> list[ProgramUpdate]:
    """Every entry of the file, or ProgramFormatError naming the first bad one."""
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ProgramFormatError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        entries = json.loads(path.read_bytes())
    except ValueError as exc:
        raise ProgramFormatError(f"{path}: not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ProgramFormatError(f"{path}: must hold a JSON array of programs")
    updates: list[ProgramUpdate] = []
    for index, entry in enumerate(entries):
        try:
            updates.append(parse_update(entry))
        except ProgramFormatError as exc:
            raise ProgramFormatError(f"{path}: entry {index}: {exc}") from None
    return updates
