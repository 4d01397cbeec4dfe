"""Header bytes that are not UTF-8, and aiohttp's own error log lines (found by the edge fuzzer:
a non-UTF-8 user agent made a 500 and lost the event; a refused request logged its bytes and the
client's address)."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage

from tracker.headertext import valid_text
from tracker.logs import ServerErrorFilter


def test_ascii_is_kept_and_undecodable_bytes_become_replacement_characters() -> None:
    assert valid_text("Mozilla/5.0") == "Mozilla/5.0"
    assert valid_text("Björk") == "Björk"
    raw = b"Caf\xe9/1.0".decode("utf-8", "surrogateescape")  # as aiohttp hands it over
    cleaned = valid_text(raw)
    assert cleaned == "Caf\ufffd/1.0"
    cleaned.encode()  # would raise on the surrogate


def record(message: str, error: BaseException | None) -> logging.LogRecord:
    info = (type(error), error, None) if error is not None else None
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, message, ("203.0.113.9",), info
    )


def test_refused_requests_are_not_logged_and_others_lose_the_address() -> None:
    refusal = BadHttpMessage("Invalid header value char: b'uid=alice@example.com'")
    assert ServerErrorFilter().filter(record("Error handling request from %s", refusal)) is False
    bug = record("Error handling request from %s", UnicodeEncodeError("utf-8", "", 0, 1, "x"))
    assert ServerErrorFilter().filter(bug) is True
    assert bug.getMessage() == "Error handling request"
    assert "203.0.113.9" not in bug.getMessage()
