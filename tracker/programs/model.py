"""Program core data: the campaign a tracking request is validated against.

One program is a JSON object on the wire (pub/sub, the program stream, files) and a hash of strings
at `program:{program_id}` in Redis. Both forms are parsed strictly here, in one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

PROGRAM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A query parameter name that needs no percent-encoding in any URL (the click id's carrier).
CLICK_ID_PARAM = re.compile(r"[A-Za-z0-9_]{1,32}")
DEFAULT_ATTRIBUTION_WINDOW_DAYS = 30
MAX_ATTRIBUTION_WINDOW_DAYS = 90
# An integer as to_redis_hash writes it: int() alone would also take " 7", "+7", "7_0" and
# non-ASCII digits, none of which a writer of ours produces.
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")
MAX_TEXT = 1024
MAX_URL = 2048
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


# What redis-py's HGETALL returns (bytes) or what a caller builds by hand (str).
RedisHash = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]


class ProgramFormatError(ValueError):
    """A program object or hash is malformed; the message says which field."""


# Written only when set; integers in the Redis hash are decimal text.
_OPTIONAL_FIELDS = (
    "valid_from",
    "valid_until",
    "landing_url",
    "click_id_param",
    "attribution_window_days",
)
_INTEGER_FIELDS = ("customer_id", "version", "valid_from", "valid_until", "attribution_window_days")


@dataclass(frozen=True, slots=True)
class Program:
    program_id: str
    program_name: str
    customer_id: int
    customer_name: str
    checksum: str
    valid: bool
    version: int
    valid_from: int | None = None
    valid_until: int | None = None
    landing_url: str | None = None
    # None when the core data does not say: stored forms then round-trip exactly, and the
    # effective window is effective_window_days.
    click_id_param: str | None = None
    attribution_window_days: int | None = None

    @property
    def effective_window_days(self) -> int:
        """How many days after a click a conversion is attributed to it (30 unless set)."""
        days = self.attribution_window_days
        return DEFAULT_ATTRIBUTION_WINDOW_DAYS if days is None else days

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "program_id": self.program_id,
            "program_name": self.program_name,
            "customer_id": self.customer_id,
            "customer_name": self.customer_name,
            "checksum": self.checksum,
            "valid": self.valid,
            "version": self.version,
        }
        for key in _OPTIONAL_FIELDS:
            value = getattr(self, key)
            if value is not None:
                obj[key] = value
        return obj

    def to_redis_hash(self) -> dict[str, str]:
        return {
            key: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for key, value in self.to_json().items()
        }


@dataclass(frozen=True, slots=True)
class ProgramDeletion:
    program_id: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"program_id": self.program_id, "deleted": True, "version": self.version}


ProgramUpdate = Program | ProgramDeletion


def is_program_id(value: str) -> bool:
    return PROGRAM_ID.fullmatch(value) is not None


def parse_update_json(raw: bytes | str) -> ProgramUpdate:
    """Parse one pub/sub message or stream record: an upsert or a deletion."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProgramFormatError(f"not JSON: {exc}") from None
    return parse_update(obj)


def parse_update(obj: object) -> ProgramUpdate:
    if not isinstance(obj, dict):
        raise ProgramFormatError("a program must be a JSON object")
    if obj.get("deleted") is True:
        return ProgramDeletion(_program_id(obj), _integer(obj, "version", 0, INT64_MAX))
    return parse_program(obj)


def parse_program(obj: Mapping[str, Any]) -> Program:
    """A program from its JSON object: types are checked, not coerced."""
    return Program(
        program_id=_program_id(obj),
        program_name=_text(obj, "program_name"),
        customer_id=_integer(obj, "customer_id", 0, INT32_MAX),
        customer_name=_text(obj, "customer_name"),
        checksum=_text(obj, "checksum"),
        valid=_boolean(obj, "valid"),
        version=_integer(obj, "version", 0, INT64_MAX),
        valid_from=_optional_integer(obj, "valid_from"),
        valid_until=_optional_integer(obj, "valid_until"),
        landing_url=_optional_url(obj.get("landing_url")),
        click_id_param=_optional_click_id_param(obj.get("click_id_param")),
        attribution_window_days=_optional_window(obj),
    )


def parse_redis_hash(fields: RedisHash) -> Program | None:
    """A program from its Redis hash (every value a string); None for a deletion tombstone."""
    decoded = {_str(key): _str(value) for key, value in fields.items()}
    if decoded.get("deleted") == "true":
        return None
    obj: dict[str, Any] = dict(decoded)
    for key in _INTEGER_FIELDS:
        if key in obj:
            obj[key] = _parse_int_text(key, obj[key])
    if "valid" in obj:
        if obj["valid"] not in ("true", "false"):
            raise ProgramFormatError("valid: must be 'true' or 'false'")
        obj["valid"] = obj["valid"] == "true"
    return parse_program(obj)


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _parse_int_text(key: str, value: str) -> int:
    if _INTEGER_TEXT.fullmatch(value) is None:
        raise ProgramFormatError(f"{key}: {value!r} is not an integer")
    return int(value)


def _program_id(obj: Mapping[str, Any]) -> str:
    value = obj.get("program_id")
    if not isinstance(value, str) or not is_program_id(value):
        raise ProgramFormatError("program_id: must match ^[A-Za-z0-9._-]{1,64}$")
    return value


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ProgramFormatError(f"{key}: must be a string of at most {MAX_TEXT} characters")
    return value


def _boolean(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise ProgramFormatError(f"{key}: must be a boolean")
    return value


def _integer(obj: Mapping[str, Any], key: str, minimum: int, maximum: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ProgramFormatError(f"{key}: must be an integer in [{minimum}, {maximum}]")
    return value


def _optional_integer(obj: Mapping[str, Any], key: str) -> int | None:
    if obj.get(key) is None:
        return None
    return _integer(obj, key, 0, INT64_MAX)


def _optional_click_id_param(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or CLICK_ID_PARAM.fullmatch(value) is None:
        raise ProgramFormatError("click_id_param: must match ^[A-Za-z0-9_]{1,32}$")
    return value


def _optional_window(obj: Mapping[str, Any]) -> int | None:
    if obj.get("attribution_window_days") is None:
        return None
    return _integer(obj, "attribution_window_days", 1, MAX_ATTRIBUTION_WINDOW_DAYS)


def _optional_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_URL or not is_redirect_url(value):
        raise ProgramFormatError(f"landing_url: must be an http(s) URL of at most {MAX_URL} chars")
    return value


def is_redirect_url(value: str) -> bool:
    """An absolute http(s) URL with a host and no characters that could split a header."""
    if any(ch in value for ch in "\r\n\t ") or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
