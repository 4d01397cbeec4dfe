"""The consumers' settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tracker.envconfig import LOG_LEVELS, EnvReader
from tracker.settings import AwsSettings, redis_url


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    aws: AwsSettings
    redis_url: str
    event_stream: str
    program_stream: str
    program_channel: str
    events_table: str
    dead_letter_table: str
    lease_table: str
    event_stream_shards: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerSettings:
        env = EnvReader(os.environ if environ is None else environ)
        return cls(
            aws=AwsSettings.from_reader(env),
            redis_url=redis_url(env),
            event_stream=env.name("EVENT_STREAM", "tracking-events"),
            program_stream=env.name("PROGRAM_STREAM", "program-updates"),
            program_channel=env.name("PROGRAM_CHANNEL", "program-updates"),
            events_table=env.name("EVENTS_TABLE", "tracking-events"),
            dead_letter_table=env.name("DEAD_LETTER_TABLE", "tracking-dead-letters"),
            lease_table=env.name("LEASE_TABLE", "tracking-consumer-leases"),
            event_stream_shards=env.integer("EVENT_STREAM_SHARDS", 2, minimum=1, maximum=500),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        )
