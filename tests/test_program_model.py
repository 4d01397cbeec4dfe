"""Unit tests for tracker.programs.model and tracker.programs.files: strict program parsing."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.programs.files import read_program_file
from tracker.programs.model import (
    DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    INT32_MAX,
    INT64_MAX,
    MAX_ATTRIBUTION_WINDOW_DAYS,
    MAX_TEXT,
    MAX_URL,
    Program,
    ProgramDeletion,
    ProgramFormatError,
    is_program_id,
    is_redirect_url,
    parse_program,
    parse_redis_hash,
    parse_update,
    parse_update_json,
)


def program_json(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "program_id": "summer-sale_2024.v1",
        "program_name": "Summer sale",
        "customer_id": 42,
        "customer_name": "ACME",
        "checksum": "abc123",
        "valid": True,
        "version": 7,
        "valid_from": 1_700_000_000,
        "valid_until": 1_800_000_000,
        "landing_url": "https://shop.example.com/summer?utm=1",
    }
    for key, value in overrides.items():
        if value is _DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


_DROP = object()

RedisHash = dict[bytes | str, bytes | str]


def redis_hash(p: Program) -> RedisHash:
    """The program's hash typed as what parse_redis_hash takes (Mapping keys are invariant)."""
    fields: RedisHash = {}
    fields.update(p.to_redis_hash())
    return fields


REQUIRED = ("program_id", "program_name", "customer_id", "customer_name", "checksum", "valid")


def test_parse_full_program() -> None:
    p = parse_program(program_json())
    assert p == Program(
        program_id="summer-sale_2024.v1",
        program_name="Summer sale",
        customer_id=42,
        customer_name="ACME",
        checksum="abc123",
        valid=True,
        version=7,
        valid_from=1_700_000_000,
        valid_until=1_800_000_000,
        landing_url="https://shop.example.com/summer?utm=1",
    )


@pytest.mark.parametrize("mode", ["absent", "null"])
def test_optional_fields_absent_or_null_are_none(mode: str) -> None:
    missing: Any = _DROP if mode == "absent" else None
    p = parse_program(program_json(valid_from=missing, valid_until=missing, landing_url=missing))
    assert (p.valid_from, p.valid_until, p.landing_url) == (None, None, None)
    assert set(p.to_json()) == {*REQUIRED, "version"}


def test_to_json_round_trips() -> None:
    p = parse_program(program_json())
    assert p.to_json() == program_json()
    assert parse_program(p.to_json()) == p


@pytest.mark.parametrize("field", [*REQUIRED, "version"])
def test_missing_required_field_is_named(field: str) -> None:
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_program(program_json(**{field: _DROP}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "42"),
        ("customer_id", 42.0),
        ("customer_id", True),
        ("customer_id", False),
        ("customer_id", None),
        ("version", "7"),
        ("version", 7.0),
        ("version", True),
        ("valid", "true"),
        ("valid", 1),
        ("valid", 0),
        ("valid", None),
        ("program_name", 5),
        ("program_name", None),
        ("customer_name", ["ACME"]),
        ("checksum", b"abc"),
        ("valid_from", "1700000000"),
        ("valid_from", 1.5),
        ("valid_from", True),
        ("valid_until", False),
        ("landing_url", 5),
        ("landing_url", {"url": "https://x.example"}),
    ],
)
def test_types_are_not_coerced(field: str, value: object) -> None:
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_program(program_json(**{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", -1),
        ("customer_id", INT32_MAX + 1),
        ("version", -1),
        ("version", INT64_MAX + 1),
        ("valid_from", -1),
        ("valid_until", INT64_MAX + 1),
    ],
)
def test_integers_out_of_range(field: str, value: int) -> None:
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_program(program_json(**{field: value}))


def test_integer_range_edges_are_accepted() -> None:
    p = parse_program(
        program_json(customer_id=INT32_MAX, version=INT64_MAX, valid_from=0, valid_until=INT64_MAX)
    )
    assert (p.customer_id, p.version, p.valid_from, p.valid_until) == (
        INT32_MAX,
        INT64_MAX,
        0,
        INT64_MAX,
    )
    assert parse_program(program_json(customer_id=0, version=0)).version == 0


def test_text_length_limit() -> None:
    assert parse_program(program_json(program_name="n" * MAX_TEXT)).program_name == "n" * MAX_TEXT
    with pytest.raises(ProgramFormatError, match=r"^program_name:"):
        parse_program(program_json(program_name="n" * (MAX_TEXT + 1)))
    assert parse_program(program_json(checksum="")).checksum == ""


@pytest.mark.parametrize(
    "program_id",
    ["a", "A-Z_a.z-0.9", "x" * 64, "...", "0"],
)
def test_good_program_ids(program_id: str) -> None:
    assert is_program_id(program_id)
    assert parse_program(program_json(program_id=program_id)).program_id == program_id


@pytest.mark.parametrize(
    "program_id",
    ["", "x" * 65, "a b", "a/b", "a:b", "caf\u00e9", "a\nb", "\nabc", "a%0A", "a*"],
)
def test_bad_program_ids(program_id: str) -> None:
    assert not is_program_id(program_id)
    with pytest.raises(ProgramFormatError, match=r"^program_id:"):
        parse_program(program_json(program_id=program_id))


@pytest.mark.parametrize("value", [None, 42, ["p1"], True])
def test_program_id_must_be_a_string(value: object) -> None:
    with pytest.raises(ProgramFormatError, match=r"^program_id:"):
        parse_program(program_json(program_id=value))


def test_program_id_with_trailing_newline_is_refused() -> None:
    # re.match with '$' would accept it: '$' also matches before a final newline
    assert not is_program_id("abc\n")
    with pytest.raises(ProgramFormatError, match=r"^program_id:"):
        parse_program(program_json(program_id="abc\n"))
    with pytest.raises(ProgramFormatError, match=r"^program_id:"):
        parse_update({"program_id": "abc\n", "deleted": True, "version": 1})


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "https://example.com/",
        "https://shop.example.com:8443/p?a=1&b=2#frag",
        "http://[2001:db8::1]/x",
        "https://example.com/" + "a" * (MAX_URL - len("https://example.com/")),
    ],
)
def test_good_landing_urls(url: str) -> None:
    assert is_redirect_url(url)
    assert parse_program(program_json(landing_url=url)).landing_url == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "javascript:alert(1)",
        "data:text/html,hi",
        "//example.com/no-scheme",
        "/relative",
        "http://",
        "https:///path-only",
        "https://example.com/a\r\nSet-Cookie: x=1",
        "https://example.com/a\nb",
        "https://example.com/a\rb",
        "https://example.com/a\tb",
        "https://example.com/a b",
        "https://example.com/\x00",
        "https://exa\u2028mple.com/",
        "http://[::1/",
        "",
        "https://example.com/" + "a" * (MAX_URL - len("https://example.com/") + 1),
    ],
)
def test_bad_landing_urls(url: str) -> None:
    with pytest.raises(ProgramFormatError, match=r"^landing_url:"):
        parse_program(program_json(landing_url=url))


def test_parse_update_deletion() -> None:
    update = parse_update({"program_id": "p1", "deleted": True, "version": 3})
    assert update == ProgramDeletion("p1", 3)
    assert update.to_json() == {"program_id": "p1", "deleted": True, "version": 3}
    assert parse_update(update.to_json()) == update


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"program_id": "p 1", "deleted": True, "version": 3}, "program_id"),
        ({"deleted": True, "version": 3}, "program_id"),
        ({"program_id": "p1", "deleted": True}, "version"),
        ({"program_id": "p1", "deleted": True, "version": "3"}, "version"),
        ({"program_id": "p1", "deleted": True, "version": True}, "version"),
        ({"program_id": "p1", "deleted": True, "version": -1}, "version"),
    ],
)
def test_bad_deletions(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_update(obj)


@pytest.mark.parametrize("flag", ["true", 1, False])
def test_deleted_must_be_the_boolean_true(flag: object) -> None:
    # Anything but the JSON literal true is not a deletion: the object is parsed as an upsert.
    with pytest.raises(ProgramFormatError, match=r"^program_name:"):
        parse_update({"program_id": "p1", "deleted": flag, "version": 3})
    assert isinstance(parse_update(program_json(deleted=flag)), Program)


def test_parse_update_upsert() -> None:
    assert parse_update(program_json()) == parse_program(program_json())


@pytest.mark.parametrize("obj", [None, [], ["p1"], "p1", 5, True])
def test_parse_update_requires_an_object(obj: object) -> None:
    with pytest.raises(ProgramFormatError, match="must be a JSON object"):
        parse_update(obj)


def test_parse_update_json_accepts_bytes_and_str() -> None:
    text = json.dumps(program_json())
    assert parse_update_json(text) == parse_program(program_json())
    assert parse_update_json(text.encode()) == parse_program(program_json())
    raw = b'{"program_id": "p1", "deleted": true, "version": 9}'
    assert parse_update_json(raw) == ProgramDeletion("p1", 9)


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", "{'a': 1}", b"\xff\xfe\x00", b"\x80"])
def test_parse_update_json_on_non_json(raw: bytes | str) -> None:
    with pytest.raises(ProgramFormatError, match=r"^not JSON"):
        parse_update_json(raw)


def test_parse_update_json_on_json_that_is_not_an_object() -> None:
    with pytest.raises(ProgramFormatError, match="must be a JSON object"):
        parse_update_json(b"[1, 2]")


# --- Redis hashes ---------------------------------------------------------------------------


def test_to_redis_hash_is_all_strings() -> None:
    h = parse_program(program_json(valid=False)).to_redis_hash()
    assert h == {
        "program_id": "summer-sale_2024.v1",
        "program_name": "Summer sale",
        "customer_id": "42",
        "customer_name": "ACME",
        "checksum": "abc123",
        "valid": "false",
        "version": "7",
        "valid_from": "1700000000",
        "valid_until": "1800000000",
        "landing_url": "https://shop.example.com/summer?utm=1",
    }
    assert parse_program(program_json()).to_redis_hash()["valid"] == "true"


def test_to_redis_hash_omits_unset_optionals() -> None:
    p = parse_program(program_json(valid_from=_DROP, valid_until=_DROP, landing_url=_DROP))
    assert set(p.to_redis_hash()) == {*REQUIRED, "version"}


def test_parse_redis_hash_from_bytes() -> None:
    p = parse_program(program_json())
    raw: RedisHash = {k.encode(): v.encode() for k, v in p.to_redis_hash().items()}
    assert parse_redis_hash(raw) == p


def test_parse_redis_hash_tombstone_is_none() -> None:
    assert parse_redis_hash({b"program_id": b"p1", b"deleted": b"true", b"version": b"4"}) is None
    assert parse_redis_hash({"deleted": "true"}) is None


@pytest.mark.parametrize("text", ["True", "1", "yes", "", "FALSE"])
def test_parse_redis_hash_valid_must_be_true_or_false(text: str) -> None:
    h = redis_hash(parse_program(program_json()))
    h["valid"] = text
    with pytest.raises(ProgramFormatError, match=r"^valid:"):
        parse_redis_hash(h)


@pytest.mark.parametrize("field", ["customer_id", "version", "valid_from", "valid_until"])
@pytest.mark.parametrize("text", ["abc", "1.5", "", "0x10"])
def test_parse_redis_hash_integers_must_be_integers(field: str, text: str) -> None:
    h = redis_hash(parse_program(program_json()))
    h[field] = text
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_redis_hash(h)


def test_parse_redis_hash_range_is_still_checked() -> None:
    h = redis_hash(parse_program(program_json()))
    h["customer_id"] = str(INT32_MAX + 1)
    with pytest.raises(ProgramFormatError, match=r"^customer_id:"):
        parse_redis_hash(h)


@pytest.mark.parametrize("field", [*REQUIRED, "version"])
def test_parse_redis_hash_missing_field(field: str) -> None:
    h = redis_hash(parse_program(program_json()))
    del h[field]
    with pytest.raises(ProgramFormatError, match=rf"^{field}:"):
        parse_redis_hash(h)


def test_parse_redis_hash_bad_landing_url() -> None:
    h = redis_hash(parse_program(program_json()))
    h["landing_url"] = "javascript:alert(1)"
    with pytest.raises(ProgramFormatError, match=r"^landing_url:"):
        parse_redis_hash(h)


# --- click ids and the attribution window ----------------------------------------------------


def test_click_id_param_and_window_are_parsed_and_written_back() -> None:
    obj = program_json(click_id_param="adt_click", attribution_window_days=7)
    p = parse_program(obj)
    assert (p.click_id_param, p.attribution_window_days, p.effective_window_days) == (
        "adt_click",
        7,
        7,
    )
    assert p.to_json() == obj
    assert p.to_redis_hash()["click_id_param"] == "adt_click"
    assert p.to_redis_hash()["attribution_window_days"] == "7"
    assert parse_redis_hash(redis_hash(p)) == p


@pytest.mark.parametrize("mode", ["absent", "null"])
def test_without_a_window_the_default_applies_and_nothing_is_written(mode: str) -> None:
    missing: Any = _DROP if mode == "absent" else None
    p = parse_program(program_json(click_id_param=missing, attribution_window_days=missing))
    assert (p.click_id_param, p.attribution_window_days) == (None, None)
    assert p.effective_window_days == DEFAULT_ATTRIBUTION_WINDOW_DAYS == 30
    assert "attribution_window_days" not in p.to_json()
    assert "click_id_param" not in p.to_redis_hash()


@pytest.mark.parametrize("days", [1, 30, MAX_ATTRIBUTION_WINDOW_DAYS])
def test_window_edges_are_accepted(days: int) -> None:
    assert parse_program(program_json(attribution_window_days=days)).effective_window_days == days


@pytest.mark.parametrize("value", [0, -1, 91, 365, True, "30", 30.0, [30]])
def test_bad_windows_are_refused(value: object) -> None:
    with pytest.raises(ProgramFormatError, match=r"^attribution_window_days:"):
        parse_program(program_json(attribution_window_days=value))


@pytest.mark.parametrize("param", ["a", "adt_click", "A9_", "x" * 32, "gclid"])
def test_good_click_id_params(param: str) -> None:
    assert parse_program(program_json(click_id_param=param)).click_id_param == param


@pytest.mark.parametrize(
    "value", ["", "x" * 33, "adt-click", "adt.click", "a b", "adt_click\n", "é", "a=b", "%41", 5]
)
def test_bad_click_id_params_are_refused(value: object) -> None:
    with pytest.raises(ProgramFormatError, match=r"^click_id_param:"):
        parse_program(program_json(click_id_param=value))


@pytest.mark.parametrize("text", ["0", "91", "abc", "", " 30", "+30", "3_0", "٣٠", "30.0"])
def test_bad_windows_in_a_redis_hash_are_refused(text: str) -> None:
    h = redis_hash(parse_program(program_json()))
    h["attribution_window_days"] = text
    with pytest.raises(ProgramFormatError, match=r"^attribution_window_days:"):
        parse_redis_hash(h)


@pytest.mark.parametrize("text", ["", "adt-click", "x" * 33])
def test_bad_click_id_params_in_a_redis_hash_are_refused(text: str) -> None:
    h = redis_hash(parse_program(program_json()))
    h["click_id_param"] = text
    with pytest.raises(ProgramFormatError, match=r"^click_id_param:"):
        parse_redis_hash(h)


@pytest.mark.parametrize("text", [" 7", "+7", "7_0", "\u0667", "7 "])
def test_redis_hash_integers_are_plain_decimal_text(text: str) -> None:
    """int() would take these; no writer of ours writes them."""
    h = redis_hash(parse_program(program_json()))
    h["version"] = text
    with pytest.raises(ProgramFormatError, match=r"^version:"):
        parse_redis_hash(h)


# --- property: every valid program survives both wire forms ---------------------------------

_URL_TAIL = st.text(alphabet=string.ascii_letters + string.digits + "/-_.~?=&%+", max_size=40)
_HOST = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True)
_LANDING = st.builds(
    lambda scheme, host, tail: f"{scheme}://{host}/{tail}",
    st.sampled_from(["http", "https"]),
    _HOST,
    _URL_TAIL,
)
_TEXT = st.text(max_size=80)
_EPOCH = st.none() | st.integers(min_value=0, max_value=INT64_MAX)

programs = st.builds(
    Program,
    program_id=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    program_name=_TEXT,
    customer_id=st.integers(min_value=0, max_value=INT32_MAX),
    customer_name=_TEXT,
    checksum=_TEXT,
    valid=st.booleans(),
    version=st.integers(min_value=0, max_value=INT64_MAX),
    valid_from=_EPOCH,
    valid_until=_EPOCH,
    landing_url=st.none() | _LANDING,
    click_id_param=st.none() | st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True),
    attribution_window_days=st.none() | st.integers(1, MAX_ATTRIBUTION_WINDOW_DAYS),
)


@settings(max_examples=200, deadline=None, database=None)
@given(programs)
def test_redis_hash_round_trip(p: Program) -> None:
    h = p.to_redis_hash()
    assert all(isinstance(v, str) for v in h.values())
    assert parse_redis_hash(redis_hash(p)) == p
    as_bytes: dict[bytes | str, bytes | str] = {
        k.encode(): v.encode("utf-8", "surrogatepass") for k, v in h.items()
    }
    assert parse_redis_hash(as_bytes) == p


@settings(max_examples=200, deadline=None, database=None)
@given(programs)
def test_json_round_trip(p: Program) -> None:
    assert parse_update_json(json.dumps(p.to_json())) == p
    assert parse_update(p.to_json()) == p


# --- program files ---------------------------------------------------------------------------


def test_read_program_file(tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    deletion = {"program_id": "old", "deleted": True, "version": 2}
    path.write_text(json.dumps([program_json(), deletion]))
    assert read_program_file(path) == [parse_program(program_json()), ProgramDeletion("old", 2)]


def test_read_empty_program_file(tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    path.write_text("[]")
    assert read_program_file(path) == []


def test_read_program_file_names_the_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    good = program_json()
    path.write_text(json.dumps([good, good, program_json(customer_id="42"), "also bad"]))
    with pytest.raises(ProgramFormatError) as info:
        read_program_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: entry 2: customer_id:")
    assert "entry 3" not in message


def test_read_program_file_non_object_entry(tmp_path: Path) -> None:
    path = tmp_path / "programs.json"
    path.write_text(json.dumps([program_json(), 17]))
    with pytest.raises(ProgramFormatError, match=r"entry 1: a program must be a JSON object"):
        read_program_file(path)


@pytest.mark.parametrize("content", [b"not json", b"[{", b"\xff\xfe[]", b""])
def test_read_program_file_not_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "programs.json"
    path.write_bytes(content)
    with pytest.raises(ProgramFormatError) as info:
        read_program_file(path)
    assert str(info.value).startswith(f"{path}: not JSON")


@pytest.mark.parametrize("content", ["{}", '{"program_id": "p1"}', '"p1"', "null"])
def test_read_program_file_must_be_an_array(tmp_path: Path, content: str) -> None:
    path = tmp_path / "programs.json"
    path.write_text(content)
    with pytest.raises(ProgramFormatError, match="must hold a JSON array"):
        read_program_file(path)


def test_read_missing_program_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_program_file(tmp_path / "missing.json")
