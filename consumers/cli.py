"""`consumers` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from botocore.exceptions import BotoCoreError, ClientError

from consumers.provision import provision
from consumers.settings import ConsumerSettings
from tracker.envconfig import SettingsError
from tracker.logs import configure_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consumers", description="Stream consumer workers.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the streams and tables the settings name, if missing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = ConsumerSettings.from_env()
    except SettingsError as exc:
        print(f"consumers: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "init":
        try:
            done = asyncio.run(provision(settings))
        except (BotoCoreError, ClientError, TimeoutError) as exc:
            print(f"consumers init: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"command": "init", **done}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
