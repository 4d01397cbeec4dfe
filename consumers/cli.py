"""`consumers` command line: init, events, programs, show."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import uvloop
from botocore.exceptions import BotoCoreError, ClientError

from consumers.settings import ConsumerSettings
from tracker.envconfig import SettingsError
from tracker.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consumers", description="Stream consumer workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the streams and tables the settings name, if missing")
    commands.add_parser("events", help="worker: event stream -> DynamoDB")
    commands.add_parser("programs", help="worker: program-updates stream -> Redis + publish")
    show = commands.add_parser("show", help="print a program's recent events from DynamoDB")
    show.add_argument("program_id")
    show.add_argument("--minutes", type=float, default=60, help="how far back (default 60)")
    show.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = ConsumerSettings.from_env()
    except SettingsError as exc:
        print(f"consumers: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(args, settings)
    except (BotoCoreError, ClientError, TimeoutError) as exc:
        print(f"consumers {args.command}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: ConsumerSettings) -> int:
    if args.command == "init":
        from consumers.provision import provision  # noqa: PLC0415

        print(json.dumps({"command": "init", **asyncio.run(provision(settings))}))
    elif args.command == "show":
        asyncio.run(_show(settings, args.program_id, args.minutes, args.limit))
    else:
        from consumers.worker import run_worker  # noqa: PLC0415

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_worker(settings, args.command))
    return 0


async def _show(settings: ConsumerSettings, program_id: str, minutes: float, limit: int) -> None:
    from consumers.show import recent_events  # noqa: PLC0415

    async for event in recent_events(settings, program_id, minutes, limit):
        print(json.dumps(event))


if __name__ == "__main__":
    sys.exit(main())
