"""`reports` command line: serve, keys create|list|revoke, show."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import AsyncExitStack

from reports.keys import COMMAND_TIMEOUT_SECONDS, KEY_ID, MAX_NAME, KeyStore
from reports.settings import ReportSettings
from reports.unavailable import UnavailableError
from tracker.envconfig import SettingsError
from tracker.programs.model import INT32_MAX


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reports", description="Reporting API and dashboard.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the reporting API and dashboard")
    keys = commands.add_parser("keys", help="report keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key; it is printed this once")
    create.add_argument("--customer", required=True, type=_customer_arg, help="customer id")
    create.add_argument("--name", type=_name_arg, help="what the key is for (for people)")
    listing = actions.add_parser("list", help="list keys as JSON lines (never the secret)")
    listing.add_argument("--customer", type=_customer_arg, help="only this customer's keys")
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", type=_key_id_arg, help="the key id (12 hex digits)")
    _add_show(commands)
    return parser


def _add_show(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = commands.add_parser(
        "show", help="a program's report rows, read straight from the tables (no key)"
    )
    show.add_argument("--program", required=True, help="program id")
    # Checked as the API checks its query (reports.query): one message per bad value.
    show.add_argument("--from", metavar="DATE", help="first local date, YYYY-MM-DD")
    show.add_argument("--to", metavar="DATE", help="last local date, YYYY-MM-DD (default today)")
    show.add_argument("--granularity", choices=("hour", "day"), help="default day")
    show.add_argument("--tz", metavar="ZONE", help="IANA time zone (default UTC)")
    show.add_argument("--format", choices=("json", "csv"), help="JSON lines (default) or CSV")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `reports` script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = ReportSettings.from_env()
    except SettingsError as exc:
        print(f"reports: bad setting: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from reports.app import serve  # noqa: PLC0415 (the CLI's other commands need no server)
        from tracker.logs import configure_logging  # noqa: PLC0415

        configure_logging(settings.log_level)
        serve(settings)
        return 0
    if args.command == "show":
        from reports.show import show  # noqa: PLC0415 (the report code loads on demand)

        return asyncio.run(show(settings, args))
    return asyncio.run(_keys(args, settings))


async def _keys(args: argparse.Namespace, settings: ReportSettings) -> int:
    from reports.rollups import open_dynamodb  # noqa: PLC0415

    async with AsyncExitStack() as stack:
        dynamodb = await open_dynamodb(settings.aws, COMMAND_TIMEOUT_SECONDS, stack)
        store = KeyStore(dynamodb, settings.report_keys_table, COMMAND_TIMEOUT_SECONDS)
        try:
            return await _key_action(args, store)
        except UnavailableError as exc:
            cause = exc.__cause__
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            print(
                f"reports keys {args.action}: table {settings.report_keys_table}{detail}",
                file=sys.stderr,
            )
            return 1


async def _key_action(args: argparse.Namespace, store: KeyStore) -> int:
    if args.action == "create":
        key, text = await store.create(args.customer, args.name)
        print(json.dumps({"key_id": key.key_id, "customer_id": key.customer_id, "key": text}))
        return 0
    if args.action == "list":
        for key in await store.list_keys(args.customer):
            print(json.dumps(key.listing()))
        return 0
    if not await store.revoke(args.key_id):
        print(f"reports keys revoke: no key {args.key_id}", file=sys.stderr)
        return 1
    print(json.dumps({"key_id": args.key_id, "revoked": True}))
    return 0


def _customer_arg(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a customer id (an integer)") from None
    if not 0 <= number <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"{number} is outside [0, {INT32_MAX}]")
    return number


def _name_arg(text: str) -> str:
    if len(text) > MAX_NAME or not text.isprintable():
        raise argparse.ArgumentTypeError(f"at most {MAX_NAME} printable characters")
    return text


def _key_id_arg(text: str) -> str:
    if not KEY_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a key id (12 lowercase hex digits)")
    return text


if __name__ == "__main__":
    sys.exit(main())
