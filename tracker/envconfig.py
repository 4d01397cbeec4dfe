"""Reading settings from the environment: each helper fails with one line naming the variable.

Shared by the tracker's and the consumers' settings so that both fail the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable and is fit for one log line."""


class EnvReader:
    """Typed, validating access to one snapshot of the environment."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, key: str) -> str | None:
        value = self._environ.get(key)
        return value if value not in (None, "") else None

    def text(self, key: str, default: str) -> str:
        value = self.raw(key)
        return default if value is None else value

    def optional_text(self, key: str) -> str | None:
        return self.raw(key)

    def name(self, key: str, default: str) -> str:
        """A stream, table or channel name: letters, digits, dot, dash, underscore."""
        value = self.text(key, default)
        if not _NAME.fullmatch(value):
            raise SettingsError(
                f"{key}: {value!r} is not a valid name ([A-Za-z0-9._-], 1-128 chars)"
            )
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{key}: {value!r} is not an integer") from None
        if not minimum <= number <= maximum:
            raise SettingsError(f"{key}: {number} is outside [{minimum}, {maximum}]")
        return number

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{key}: {value!r} is not a number") from None
        if not minimum <= number <= maximum:
            raise SettingsError(f"{key}: {number} is outside [{minimum}, {maximum}]")
        return number

    def url(self, key: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        check_url(key, value, schemes)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default).upper()
        if value not in choices:
            raise SettingsError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{key}: {value!r} is not a boolean (true/false)")


def check_url(key: str, value: str, schemes: tuple[str, ...]) -> None:
    """Raise SettingsError unless value is an absolute URL with one of the schemes and a host
    (a path for unix sockets), free of whitespace and control characters.

    urlsplit silently drops CR, LF and TAB, so they are refused before it sees the value: such a
    URL would otherwise pass here and break every Location header it is written into.
    """
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise SettingsError(f"{key}: {value!r} contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    located = bool(parts.path) if parts.scheme == "unix" else bool(parts.hostname)
    if parts.scheme not in schemes or not located or not port_ok:
        raise SettingsError(f"{key}: {value!r} is not a valid {'/'.join(schemes)} URL")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def aws_endpoints(env: EnvReader) -> tuple[str | None, str | None, str | None]:
    """Validate the AWS endpoint variables; botocore itself reads them from the environment."""
    return (
        env.url("AWS_ENDPOINT_URL", None, schemes=("http", "https")),
        env.url("AWS_ENDPOINT_URL_KINESIS", None, schemes=("http", "https")),
        env.url("AWS_ENDPOINT_URL_DYNAMODB", None, schemes=("http", "https")),
    )
