"""The handlers run by awslambdaric, as in the image's Lambda target, fed through the Runtime API.

awslambdaric is a real process here, the Runtime API it polls is our protocol peer
(tests/support/lambda_runtime_api.py), and the events go to real moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    make_events,
    message_ids,
    provisioned,
    stored_message_ids,
)
from tests.support.lambda_events import kinesis_event, sequence
from tests.support.lambda_runtime_api import RuntimeApi, awslambdaric

HANDLER = "consumers.lambda_handlers.events_handler"


@pytest.fixture
async def env(kinesalite_url: str, moto_url: str, redis_url: str) -> dict[str, str]:
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    await provisioned(env)
    return env


@pytest.fixture
def runtime(env: dict[str, str], runtime_api: RuntimeApi, tmp_path: Path) -> Iterator[None]:
    """The events handler under awslambdaric (its output: tmp_path)."""
    with awslambdaric(HANDLER, env, runtime_api, tmp_path / "runtime.log"):
        yield


async def stored(env: dict[str, str]) -> dict[str, int]:
    settings = ConsumerSettings.from_env(env)
    assert settings.aws.dynamodb_endpoint is not None
    return dict(await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table))


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("runtime")
async def test_awslambdaric_runs_the_events_handler_invocation_after_invocation(
    env: dict[str, str], runtime_api: RuntimeApi
) -> None:
    settings = ConsumerSettings.from_env(env)
    first, second = make_events(120), make_events(3)
    answer = await runtime_api.invoke(kinesis_event(first, settings, settings.event_stream))
    assert (answer.kind, answer.body) == ("response", {"batchItemFailures": []})
    poison = [second[0], b"\xff not an event", *second[1:]]
    answer = await runtime_api.invoke(kinesis_event(poison, settings, settings.event_stream, 500))
    assert (answer.kind, answer.body) == ("response", {"batchItemFailures": []})
    assert await stored(env) == dict.fromkeys(message_ids(first + second), 1)

    # The runtime's deadline reaches the handler: no time left, nothing stored, all reported.
    late = make_events(2)
    event = kinesis_event(late, settings, settings.event_stream, first=900)
    answer = await runtime_api.invoke(event, timeout_seconds=0.2)
    assert (answer.kind, answer.body) == (
        "response",
        {"batchItemFailures": [{"itemIdentifier": sequence(900)}]},
    )
    assert not message_ids(late) & set(await stored(env))

    # An event that is no Kinesis batch is a function error, reported on the error route.
    answer = await runtime_api.invoke({"Records": [{"kinesis": {"sequenceNumber": "x"}}]})
    assert answer.kind == "error"
    assert answer.body["errorType"] == "MalformedEventError"
    assert "sequenceNumber" in answer.body["errorMessage"]
    assert runtime_api.init_errors == []
