"""`tracker` command line: serve, programs load, programs publish."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from tracker.envconfig import SettingsError
from tracker.programs.model import ProgramFormatError
from tracker.settings import TrackerSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description="Ad-tracking HTTP service.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service (settings from the environment)")
    programs = commands.add_parser("programs", help="program core data")
    actions = programs.add_subparsers(dest="action", required=True)
    load = actions.add_parser("load", help="write programs into Redis and publish each change")
    load.add_argument("file", type=Path, help="JSON array of programs (or deletions)")
    publish = actions.add_parser("publish", help="put programs on the program-updates stream")
    publish.add_argument("file", type=Path, help="JSON array of programs (or deletions)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = TrackerSettings.from_env()
    except SettingsError as exc:
        print(f"tracker: bad setting: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from tracker.server import serve  # noqa: PLC0415 (keeps `programs` free of aiohttp server imports)

        serve(settings)
        return 0
    return _programs(args.action, args.file, settings)


def _programs(action: str, path: Path, settings: TrackerSettings) -> int:
    from tracker.programs.commands import load_programs, publish_programs  # noqa: PLC0415

    command = load_programs if action == "load" else publish_programs
    try:
        result = asyncio.run(command(settings, path))
    except (ProgramFormatError, OSError) as exc:
        print(f"tracker programs {action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"command": f"programs {action}", "file": str(path), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
