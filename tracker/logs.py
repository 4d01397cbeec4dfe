"""JSON-lines logging on stdout, configured once per process."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

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


class ServerErrorFilter(logging.Filter):
    """aiohttp.server logs "Error handling request from <address>" with the exception. A request
    its HTTP parser refused (the 400 it answers) is dropped: its exception quotes the raw request
    line or header, a user agent or a uid. Any other (a 500: our bug) keeps its traceback, which
    we need, but loses the address."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            return False
        if isinstance(record.msg, str) and record.msg.startswith("Error handling request"):
            record.msg, record.args = "Error handling request", None
        return True


# Our own loggers: they log counts, ids and error kinds, never a request's or an event's content.
OWN_LOGGERS = ("tracker", "consumers", "reports", "bench")


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
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ServerErrorFilter) for f in server.filters):
        server.addFilter(ServerErrorFilter())
