"""`tracker` command line: serve, programs load, programs publish, links sign."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tracker.envconfig import EnvReader, SettingsError
from tracker.events.builder import PARAM_KEY
from tracker.integrity.signing import parse_base_url, signed_click_url
from tracker.programs.model import PROGRAM_ID, ProgramFormatError
from tracker.settings import TrackerSettings, signing_keys


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
    _add_links(commands)
    return parser


def main(argv: list[str] | None = None, *, clock: Callable[[], float] = time.time) -> int:
    args = _parser().parse_args(argv)
    if args.command == "links":
        # Signing needs only CLICK_SIGNING_KEYS: an unrelated bad setting must not block it.
        return _links_sign(args, os.environ, clock)
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


# Ad links sit in creatives for weeks; ten years is beyond any campaign and keeps `exp` short.
DEFAULT_LINK_TTL = 30 * 24 * 3600
MAX_LINK_TTL = 10 * 365 * 24 * 3600
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
_LINK_OWN_PARAMS = frozenset({"program", "sig", "exp", "kid"})


def _add_links(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    links = commands.add_parser("links", help="signed click links")
    actions = links.add_subparsers(dest="action", required=True)
    sign = actions.add_parser(
        "sign", help="print a signed click URL (the first key of CLICK_SIGNING_KEYS signs)"
    )
    sign.add_argument("--program", required=True, type=_program_arg, help="program id")
    sign.add_argument(
        "--param",
        action="append",
        default=[],
        type=_param_arg,
        metavar="KEY=VALUE",
        help="an extra query parameter, signed with the rest (repeatable)",
    )
    sign.add_argument(
        "--ttl",
        type=_ttl_arg,
        default=DEFAULT_LINK_TTL,
        metavar="SECONDS",
        help=f"how long the link counts (default {DEFAULT_LINK_TTL}: 30 days)",
    )
    sign.add_argument(
        "--base-url",
        type=_base_url_arg,
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help=f"the tracker's public URL (default {DEFAULT_BASE_URL}); a path is kept as a"
        " prefix and not signed: a proxy that adds it must strip it",
    )


def _program_arg(text: str) -> str:
    if not PROGRAM_ID.fullmatch(text):
        raise argparse.ArgumentTypeError("must match ^[A-Za-z0-9._-]{1,64}$")
    return text


def _param_arg(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if not PARAM_KEY.fullmatch(key):  # a key the tracker keeps in `params`
        raise argparse.ArgumentTypeError(f"key {key!r} must match ^[A-Za-z0-9_.-]{{1,32}}$")
    if key in _LINK_OWN_PARAMS:
        raise argparse.ArgumentTypeError(f"key {key!r} is set by the command itself")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in argv arrive as lone surrogates
        raise argparse.ArgumentTypeError(f"the value of {key!r} is not UTF-8") from None
    return key, value


def _ttl_arg(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if not 0 < seconds <= MAX_LINK_TTL:
        raise argparse.ArgumentTypeError(f"{seconds} is outside [1, {MAX_LINK_TTL}]")
    return seconds


def _base_url_arg(text: str) -> str:
    try:
        return parse_base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} {exc}") from None


def _links_sign(
    args: argparse.Namespace, environ: Mapping[str, str], clock: Callable[[], float]
) -> int:
    try:
        keys = signing_keys(EnvReader(environ))  # as `tracker serve` reads it
    except SettingsError as exc:
        print(f"tracker: bad setting: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print(
            "tracker links sign: CLICK_SIGNING_KEYS is not set"
            " (kid:base64secret[,kid:base64secret...]; the first key signs)",
            file=sys.stderr,
        )
        return 2
    expires_at = int(clock()) + args.ttl
    try:
        url = signed_click_url(args.base_url, args.program, args.param, keys[0], expires_at)
    except ValueError as exc:  # beyond the verifier's bounds: too many or too long parameters
        print(f"tracker links sign: {exc}", file=sys.stderr)
        return 2
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
