"""JSON-lines logging on stdout, configured once per process."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else came in through `extra=` and is logged as a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Our own loggers: they log counts, ids and error kinds, never a request's or an event's content.
OWN_LOGGERS = ("tracker", "consumers", "bench")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries log whole payloads at DEBUG (botocore the items it writes, with their user agents
    # and addresses), so DEBUG applies to our own loggers only: personal data never reaches a log.
    root.setLevel(max(logging.getLevelName(level), logging.INFO))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # aiohttp's access log (addresses, user agents, referers) is off, and stays off.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
