"""`consumers` command line: init, events, programs, lake, show, privacy, redrive."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

import uvloop
from botocore.exceptions import BotoCoreError, ClientError

from consumers.retrying import UnprocessedItemsError
from consumers.settings import ConsumerSettings
from tracker.envconfig import SettingsError
from tracker.logs import configure_logging
from tracker.privacy.keys import MAX_USER_ID, is_user_id, user_key

MAX_REDRIVE_MESSAGES = 10_000
PRIVACY_OPERATIONS = {
    "export": "print every stored event of the user as JSON lines",
    "erase": "suppress the user and delete every stored event of theirs",
    "restrict": "suppress the user: later events are not stored, stored ones stay",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consumers", description="Stream consumer workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the streams and tables the settings name, if missing")
    commands.add_parser("events", help="worker: event stream -> DynamoDB")
    commands.add_parser("programs", help="worker: program-updates stream -> Redis + publish")
    _lake_parser(commands)
    show = commands.add_parser("show", help="print a program's recent events from DynamoDB")
    show.add_argument("program_id")
    show.add_argument("--minutes", type=float, default=60, help="how far back (default 60)")
    show.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    redrive = commands.add_parser(
        "redrive", help="store the batches Lambda gave up on, listed in FAILURE_QUEUE_URL"
    )
    redrive.add_argument(
        "--max-messages",
        type=_bounded_count,
        default=100,
        help=f"handle at most this many queue messages (1-{MAX_REDRIVE_MESSAGES}, default 100)",
    )
    privacy = commands.add_parser("privacy", help="a data subject's rights over stored events")
    operations = privacy.add_subparsers(dest="operation", required=True)
    for name, text in PRIVACY_OPERATIONS.items():
        operation = operations.add_parser(name, help=text)
        operation.add_argument(
            "--user-id", required=True, help="the advertiser's user id (the uid parameter)"
        )
    return parser


def _lake_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lake = commands.add_parser("lake", help="worker: event stream -> the event lake (Iceberg)")
    actions = lake.add_subparsers(dest="lake_action")
    query = actions.add_parser("query", help="run SQL (DuckDB) over the lake's table `events`")
    query.add_argument("sql")
    query.add_argument("--format", choices=("json", "csv"), default="json")
    actions.add_parser(
        "maintain",
        help="expire snapshots, remove unreferenced files, compact, apply LAKE_RETENTION_DAYS",
    )


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
    except (BotoCoreError, ClientError, TimeoutError, UnprocessedItemsError) as exc:
        print(f"consumers {args.command}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: ConsumerSettings) -> int:
    """The command; a table it would use missing or keyed otherwise: one line, status 1."""
    from consumers.provision import UnusableTableError  # noqa: PLC0415

    try:
        return _command(args, settings)
    except UnusableTableError as exc:
        print(f"consumers {args.command}: {exc}", file=sys.stderr)
        return 1


def _command(args: argparse.Namespace, settings: ConsumerSettings) -> int:
    if args.command == "init":
        from consumers.provision import provision  # noqa: PLC0415

        print(json.dumps({"command": "init", **asyncio.run(provision(settings))}))
    elif args.command == "show":
        _log_to_stderr()
        asyncio.run(_show(settings, args.program_id, args.minutes, args.limit))
    elif args.command == "privacy":
        return _privacy(args.operation, args.user_id, settings)
    elif args.command == "redrive":
        return _redrive(settings, args.max_messages)
    elif args.command == "lake":
        from consumers.lake.cli import lake_command  # noqa: PLC0415

        if args.lake_action:
            _log_to_stderr()
        return lake_command(args, settings)
    else:
        from consumers.worker import run_worker  # noqa: PLC0415

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_worker(settings, args.command))
    return 0


async def _show(settings: ConsumerSettings, program_id: str, minutes: float, limit: int) -> None:
    from consumers.show import recent_events  # noqa: PLC0415

    async for event in recent_events(settings, program_id, minutes, limit):
        print(json.dumps(event))


def _bounded_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a whole number") from None
    if not 1 <= count <= MAX_REDRIVE_MESSAGES:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_REDRIVE_MESSAGES}")
    return count


def _redrive(settings: ConsumerSettings, max_messages: int) -> int:
    """Print the summary as one JSON object; exit 1 when any message had to be kept."""
    from consumers.redrive import redrive  # noqa: PLC0415

    queue_url = settings.redrive.queue_url
    if queue_url is None:
        print("consumers redrive: FAILURE_QUEUE_URL is not set", file=sys.stderr)
        return 2
    _log_to_stderr()
    summary = asyncio.run(redrive(settings, queue_url, max_messages))
    print(json.dumps(summary.as_json()))
    return 1 if summary.kept else 0


def _privacy(operation: str, user_id: str, settings: ConsumerSettings) -> int:
    """Check the secret and the id, then work with the id's keyed hash only."""
    secret = settings.privacy.user_id_key
    if secret is None:
        print(
            "consumers privacy: USER_ID_KEY is not set: it is the secret the tracker hashes "
            "uid with, needed to find the user's events",
            file=sys.stderr,
        )
        return 2
    if not is_user_id(user_id):  # the message never repeats the id
        print(
            f"consumers privacy: --user-id must be 1 to {MAX_USER_ID} characters", file=sys.stderr
        )
        return 2
    _log_to_stderr()
    asyncio.run(_privacy_operation(settings, operation, user_key(secret, user_id)))
    return 0


async def _privacy_operation(settings: ConsumerSettings, operation: str, key: str) -> None:
    from consumers import privacy  # noqa: PLC0415

    async with privacy.opened(settings) as opened:
        if operation == "export":
            await privacy.export(opened, key, lambda event: print(json.dumps(event)))
        elif operation == "erase":
            print(json.dumps({"erased": await privacy.erase(opened, key)}))
        else:
            await privacy.restrict(opened, key)
            print(json.dumps({"restricted": True}))


def _log_to_stderr() -> None:
    """For commands whose stdout is data: log lines go to stderr instead."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
