"""Unit tests for tracker.envconfig and tracker.settings: defaults, parsing, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.envconfig import EnvReader, SettingsError, aws_endpoints, check_url
from tracker.settings import TrackerSettings


def test_defaults_match_the_contract() -> None:
    s = TrackerSettings.from_env({})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.aws.region == "us-east-1"
    assert s.aws.kinesis_endpoint is None
    assert s.aws.dynamodb_endpoint is None
    assert s.event_stream == "tracking-events"
    assert s.program_stream == "program-updates"
    assert s.program_channel == "program-updates"
    assert s.host == "0.0.0.0"
    assert s.port == 8080
    assert s.workers == 1
    assert s.cache.max_entries == 100_000
    assert s.cache.ttl_seconds == 600
    assert s.admin_token is None
    assert s.click_fallback_url is None
    assert s.log_level == "INFO"


def test_durability_defaults_match_the_contract(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    shipping = TrackerSettings.from_env({}).shipping
    assert shipping.write_ahead is False  # DURABILITY=overflow
    assert shipping.spill.directory == tmp_path / ".adtracker" / "spill"
    assert shipping.spill.max_bytes == 1073741824
    assert shipping.spill.fsync is False
    assert shipping.spill_after_seconds == 5
    chosen = TrackerSettings.from_env(
        {"DURABILITY": "write-ahead", "SPILL_DIR": "/var/lib/adtracker/spill", "SPILL_FSYNC": "1"}
    ).shipping
    assert chosen.write_ahead is True
    assert chosen.spill.directory == Path("/var/lib/adtracker/spill")
    assert chosen.spill.fsync is True


def test_documented_extra_defaults() -> None:
    s = TrackerSettings.from_env({})
    assert s.redis_timeout_seconds == pytest.approx(0.05)
    assert s.cache.negative_max_entries == 10_000
    assert s.cache.negative_ttl_seconds == 5
    assert s.shipping.buffer_max_events == 200_000
    assert s.shipping.linger_seconds == pytest.approx(0.05)
    assert s.shipping.max_in_flight == 4
    assert s.shipping.drain_seconds == 25
    assert s.trust_forwarded_for is False
    assert s.instance_id  # hostname-pid, never empty


def test_every_setting_is_read() -> None:
    env = {
        "REDIS_URL": "rediss://cache.example.com:6380/2",
        "REDIS_TIMEOUT_MS": "250",
        "AWS_REGION": "eu-west-1",
        "EVENT_STREAM": "ev",
        "PROGRAM_STREAM": "ps",
        "PROGRAM_CHANNEL": "pc",
        "TRACKER_HOST": "127.0.0.1",
        "TRACKER_PORT": "9090",
        "TRACKER_WORKERS": "3",
        "CACHE_MAX_ENTRIES": "50",
        "CACHE_TTL_SECONDS": "1.5",
        "NEGATIVE_CACHE_MAX_ENTRIES": "7",
        "NEGATIVE_CACHE_TTL_SECONDS": "0.25",
        "SHIP_BUFFER_MAX_EVENTS": "1000",
        "SHIP_LINGER_MS": "0",
        "SHIP_MAX_IN_FLIGHT": "8",
        "SHIP_DRAIN_SECONDS": "3",
        "ADMIN_TOKEN": "s3cret",
        "CLICK_FALLBACK_URL": "https://example.com/fallback?x=1",
        "TRUST_FORWARDED_FOR": "yes",
        "TRACKER_INSTANCE_ID": "tracker-a",
        "LOG_LEVEL": "debug",
    }
    s = TrackerSettings.from_env(env)
    assert s.redis_url == "rediss://cache.example.com:6380/2"
    assert s.redis_timeout_seconds == pytest.approx(0.25)
    assert s.aws.region == "eu-west-1"
    assert (s.event_stream, s.program_stream, s.program_channel) == ("ev", "ps", "pc")
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 9090, 3)
    assert s.cache.max_entries == 50
    assert s.cache.ttl_seconds == 1.5
    assert s.cache.negative_max_entries == 7
    assert s.cache.negative_ttl_seconds == 0.25
    assert s.shipping.buffer_max_events == 1000
    assert s.shipping.linger_seconds == 0
    assert s.shipping.max_in_flight == 8
    assert s.shipping.drain_seconds == 3
    assert s.admin_token == "s3cret"
    assert s.click_fallback_url == "https://example.com/fallback?x=1"
    assert s.trust_forwarded_for is True
    assert s.instance_id == "tracker-a"
    assert s.log_level == "DEBUG"


def test_from_env_without_argument_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_PORT", "18123")
    assert TrackerSettings.from_env().port == 18123


def test_empty_values_mean_unset() -> None:
    s = TrackerSettings.from_env(
        {"TRACKER_PORT": "", "REDIS_URL": "", "ADMIN_TOKEN": "", "CLICK_FALLBACK_URL": ""}
    )
    assert s.port == 8080
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.admin_token is None
    assert s.click_fallback_url is None


@pytest.mark.parametrize("port", ["0", "1", "65535"])
def test_port_edges_are_accepted(port: str) -> None:
    assert TrackerSettings.from_env({"TRACKER_PORT": port}).port == int(port)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRACKER_PORT", "http"),
        ("TRACKER_PORT", "80.5"),
        ("TRACKER_PORT", "8080x"),
        ("TRACKER_PORT", "65536"),
        ("TRACKER_PORT", "-1"),
        ("TRACKER_WORKERS", "0"),
        ("TRACKER_WORKERS", "65"),
        ("REDIS_TIMEOUT_MS", "0"),
        ("CACHE_MAX_ENTRIES", "0"),
        ("CACHE_MAX_ENTRIES", "many"),
        ("CACHE_TTL_SECONDS", "ten"),
        ("CACHE_TTL_SECONDS", "0"),
        ("CACHE_TTL_SECONDS", "nan"),
        ("CACHE_TTL_SECONDS", "inf"),
        ("NEGATIVE_CACHE_MAX_ENTRIES", "-5"),
        ("NEGATIVE_CACHE_TTL_SECONDS", "x"),
        ("SHIP_BUFFER_MAX_EVENTS", "0"),
        ("SHIP_LINGER_MS", "0.5"),
        ("SHIP_MAX_IN_FLIGHT", "0"),
        ("SHIP_DRAIN_SECONDS", "-1"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "http://127.0.0.1:6379/0"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "redis://host:notaport/0"),
        ("REDIS_URL", "redis://host:0/0"),
        ("REDIS_URL", "redis://host:70000/0"),
        ("REDIS_URL", "redis://[::1/0"),
        ("CLICK_FALLBACK_URL", "javascript:alert(1)"),
        ("CLICK_FALLBACK_URL", "ftp://example.com/"),
        ("CLICK_FALLBACK_URL", "/relative/path"),
        ("CLICK_FALLBACK_URL", "https://"),
        ("AWS_ENDPOINT_URL", "localhost:4567"),
        ("AWS_ENDPOINT_URL", "tcp://127.0.0.1:4567"),
        ("AWS_ENDPOINT_URL", "http://"),
        ("AWS_ENDPOINT_URL_KINESIS", "127.0.0.1:4567"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "redis://127.0.0.1:5000"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "TRACE"),
        ("TRUST_FORWARDED_FOR", "maybe"),
        ("TRUST_FORWARDED_FOR", "2"),
        ("EVENT_STREAM", "bad name"),
        ("PROGRAM_STREAM", "x" * 129),
        ("PROGRAM_CHANNEL", "a/b"),
        ("AWS_REGION", "us east 1"),
        ("DURABILITY", "paranoid"),
        ("DURABILITY", "writeahead"),
        ("SPILL_MAX_BYTES", "1GiB"),
        ("SPILL_MAX_BYTES", "1024"),
        ("SPILL_AFTER_SECONDS", "0"),
        ("SPILL_FSYNC", "sometimes"),
        ("SPILL_DIR", "spill\ndir"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        TrackerSettings.from_env({variable: value})
    message = str(info.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


def test_error_message_stays_one_line_for_a_value_with_newlines() -> None:
    with pytest.raises(SettingsError) as info:
        TrackerSettings.from_env({"TRACKER_PORT": "80\n80\r\n"})
    assert str(info.value).startswith("TRACKER_PORT:")
    assert "\n" not in str(info.value)
    assert "\r" not in str(info.value)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:password@cache.internal:6379",
        "rediss://master.example.cache.amazonaws.com:6379/0",
        "redis://[::1]:6379/0",
    ],
)
def test_good_redis_urls_are_accepted(url: str) -> None:
    assert TrackerSettings.from_env({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    "url", ["unix:///var/run/redis/redis.sock?db=0", "unix:///var/run/redis.sock"]
)
def test_unix_socket_redis_url_is_accepted(url: str) -> None:
    assert TrackerSettings.from_env({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", ["unix://", "unix:", "unix:///var/run/redis sock"])
def test_unix_socket_redis_url_needs_a_path(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^REDIS_URL:"):
        TrackerSettings.from_env({"REDIS_URL": url})


def test_unix_scheme_is_only_for_redis() -> None:
    with pytest.raises(SettingsError, match=r"^AWS_ENDPOINT_URL:"):
        TrackerSettings.from_env({"AWS_ENDPOINT_URL": "unix:///var/run/aws.sock"})


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a\r\nSet-Cookie: x=1",
        "https://example.com/a\n",
        "https://exa\tmple.com/",
        "https://example.com/a b",
        "https://exa mple.com/",
        " https://example.com/",
        "https://example.com/\x00",
    ],
)
def test_fallback_url_with_whitespace_or_control_characters_is_refused(url: str) -> None:
    # urlsplit silently drops CR/LF/TAB: such a URL would break every Location header

    with pytest.raises(SettingsError, match=r"^CLICK_FALLBACK_URL:"):
        TrackerSettings.from_env({"CLICK_FALLBACK_URL": url})


def test_kinesis_endpoint_wins_over_common_endpoint() -> None:
    s = TrackerSettings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:4567",
        }
    )
    assert s.aws.kinesis_endpoint == "http://127.0.0.1:4567"
    assert s.aws.dynamodb_endpoint == "http://127.0.0.1:5000"


def test_dynamodb_endpoint_wins_over_common_endpoint() -> None:
    s = TrackerSettings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
            "AWS_ENDPOINT_URL_DYNAMODB": "https://ddb.local:8000",
        }
    )
    assert s.aws.dynamodb_endpoint == "https://ddb.local:8000"
    assert s.aws.kinesis_endpoint == "http://127.0.0.1:5000"


def test_common_endpoint_applies_to_every_service() -> None:
    s = TrackerSettings.from_env({"AWS_ENDPOINT_URL": "http://localhost:4566"})
    assert s.aws.kinesis_endpoint == "http://localhost:4566"
    assert s.aws.dynamodb_endpoint == "http://localhost:4566"


def test_aws_endpoints_returns_each_variable() -> None:
    env = EnvReader(
        {
            "AWS_ENDPOINT_URL": "http://a:1",
            "AWS_ENDPOINT_URL_KINESIS": "http://k:2",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://d:3",
        }
    )
    assert aws_endpoints(env) == ("http://a:1", "http://k:2", "http://d:3")
    assert aws_endpoints(EnvReader({})) == (None, None, None)


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "Yes", "on"])
def test_flag_true_spellings(text: str) -> None:
    assert EnvReader({"F": text}).flag("F", False) is True


@pytest.mark.parametrize("text", ["0", "false", "False", "NO", "off"])
def test_flag_false_spellings(text: str) -> None:
    assert EnvReader({"F": text}).flag("F", True) is False


def test_flag_default_when_unset() -> None:
    assert EnvReader({}).flag("F", True) is True
    assert EnvReader({}).flag("F", False) is False


@pytest.mark.parametrize("level", ["debug", "Info", "WARNING", "error", "critical"])
def test_log_level_is_case_insensitive_and_normalised(level: str) -> None:
    assert TrackerSettings.from_env({"LOG_LEVEL": level}).log_level == level.upper()


def test_integer_and_number_bounds_are_inclusive() -> None:
    env = EnvReader({"LO": "1", "HI": "10", "F": "0.5"})
    assert env.integer("LO", 5, minimum=1, maximum=10) == 1
    assert env.integer("HI", 5, minimum=1, maximum=10) == 10
    assert env.number("F", 1.0, minimum=0.5, maximum=0.5) == 0.5
    assert env.integer("MISSING", 5, minimum=1, maximum=10) == 5
    assert env.number("MISSING", 2.5, minimum=0, maximum=10) == 2.5


def test_integer_rejects_just_outside_bounds() -> None:
    with pytest.raises(SettingsError, match=r"^N: 11 is outside \[1, 10\]$"):
        EnvReader({"N": "11"}).integer("N", 5, minimum=1, maximum=10)
    with pytest.raises(SettingsError, match=r"^N: 0 is outside"):
        EnvReader({"N": "0"}).integer("N", 5, minimum=1, maximum=10)


def test_name_accepts_the_allowed_alphabet() -> None:
    assert EnvReader({"S": "a.B_c-9"}).name("S", "d") == "a.B_c-9"
    assert EnvReader({}).name("S", "default-name") == "default-name"


def test_url_default_is_returned_unchecked_when_unset() -> None:
    assert EnvReader({}).url("U", None, schemes=("http",)) is None
    assert EnvReader({}).url("U", "http://d", schemes=("http",)) == "http://d"


@pytest.mark.parametrize(
    "url", ["http://example.com", "https://example.com:8443/x?y=1", "http://[::1]:80/"]
)
def test_check_url_accepts_absolute_urls(url: str) -> None:
    check_url("U", url, ("http", "https"))  # does not raise


@pytest.mark.parametrize(
    "url", ["example.com", "https://", "http://h:0/", "http://h:x/", "http://[::1/", "HTTP"]
)
def test_check_url_rejects_malformed_urls(url: str) -> None:
    with pytest.raises(SettingsError, match=r"^U: "):
        check_url("U", url, ("http", "https"))


@pytest.mark.parametrize("value", ["tracking-events\n", "\ntracking-events", "a\nb"])
def test_name_with_a_newline_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^EVENT_STREAM:"):
        TrackerSettings.from_env({"EVENT_STREAM": value})


def test_redis_password_is_folded_into_the_url() -> None:
    env = {"REDIS_URL": "rediss://cache.example:6379/0", "REDIS_PASSWORD": "p@ss/word"}
    assert TrackerSettings.from_env(env).redis_url == "rediss://:p%40ss%2Fword@cache.example:6379/0"


def test_a_password_in_the_url_wins_over_redis_password() -> None:
    env = {"REDIS_URL": "redis://:inline@cache.example:6379/0", "REDIS_PASSWORD": "other"}
    assert TrackerSettings.from_env(env).redis_url == "redis://:inline@cache.example:6379/0"
