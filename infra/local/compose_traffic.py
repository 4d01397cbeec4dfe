"""Tagged pixels and clicks from the host, and the check that exactly their items were stored.

Every request carries a marker of its own in an extra query parameter (`ct`), which the tracker
keeps in the event's `params` and the consumer stores in the item's `params`: so each item says
which request it came from, and a lost, duplicated or foreign item is named by its marker.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from compose_stack import CheckError

MARKER_PARAM = "ct"
# A desktop browser: curl or Python's own user agent would be flagged as known crawlers (still
# stored, but the check means to look like the traffic the stack is for).
BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass(frozen=True)
class Sent:
    """One request the check made, and the item it must find for it."""

    marker: str
    event_type: str  # the item's event_type: IMPRESSION or CLICK


@dataclass(frozen=True)
class Tracker:
    host: str
    port: int
    program_id: str
    landing_url: str  # where the program's clicks must go


def send_pixels_and_clicks(tracker: Tracker, run_id: str, pixels: int, clicks: int) -> list[Sent]:
    """Send the requests over one keep-alive connection; a wrong answer is a failure."""
    connection = http.client.HTTPConnection(tracker.host, tracker.port, timeout=10)
    sent = []
    try:
        for number in range(pixels):
            marker = f"{run_id}-pixel-{number}"
            _expect(connection, _path("/v1/pixel", tracker, marker), 200, "image/gif")
            sent.append(Sent(marker, "IMPRESSION"))
        for number in range(clicks):
            marker = f"{run_id}-click-{number}"
            answer = _expect(connection, _path("/v1/click", tracker, marker), 302, None)
            if answer.getheader("Location") != tracker.landing_url:
                raise CheckError(f"click {marker} went to {answer.getheader('Location')!r}")
            sent.append(Sent(marker, "CLICK"))
    except (OSError, http.client.HTTPException) as exc:
        raise CheckError(f"tracker at {tracker.host}:{tracker.port}: {exc}") from None
    finally:
        connection.close()
    return sent


def _path(route: str, tracker: Tracker, marker: str) -> str:
    return f"{route}?{urlencode({'program': tracker.program_id, MARKER_PARAM: marker})}"


def _expect(
    connection: http.client.HTTPConnection, path: str, status: int, content_type: str | None
) -> http.client.HTTPResponse:
    connection.request("GET", path, headers={"User-Agent": BROWSER_AGENT})
    answer = connection.getresponse()
    answer.read()  # the body, so that the connection can carry the next request
    if answer.status != status:
        raise CheckError(f"GET {path}: {answer.status}, expected {status}")
    if content_type is not None and answer.getheader("Content-Type") != content_type:
        raise CheckError(f"GET {path}: Content-Type {answer.getheader('Content-Type')!r}")
    return answer


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # the JSON body, or None when there is none or it is not JSON


def get_json(host: str, port: int, path: str, headers: Mapping[str, str] | None = None) -> Answer:
    """One GET from the host (the reports service); a connection failure is a failure."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        answer = connection.getresponse()
        raw = answer.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CheckError(f"GET {host}:{port}{path}: {exc}") from None
    finally:
        connection.close()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return Answer(answer.status, {k.lower(): v for k, v in answer.getheaders()}, body)


def parse_json_line(output: str, required: str) -> dict[str, Any]:
    """The one JSON object with the key `required` in a command's output (logs are JSON lines
    too, without it)."""
    for line in output.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and required in value:
            return value
    raise CheckError(f"no JSON line with {required!r} in: {output[-500:]!r}")


def parse_items(json_lines: str) -> list[dict[str, Any]]:
    """The items `consumers show` printed, one JSON object a line; anything else is a failure."""
    items = []
    for line in json_lines.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            raise CheckError(f"consumers show printed a non-JSON line: {line[:200]!r}") from None
        if not isinstance(item, dict):
            raise CheckError(f"consumers show printed a line that is not an item: {line[:200]!r}")
        items.append(item)
    return items


@dataclass(frozen=True)
class Comparison:
    """Sent requests against stored items, by marker."""

    missing: list[str]
    duplicated: list[str]
    foreign: list[str]  # items no request of this run made (their marker, or their message_id)
    wrong_type: list[str]

    @property
    def exact(self) -> bool:
        return not (self.missing or self.duplicated or self.foreign or self.wrong_type)

    def describe(self) -> str:
        parts = {
            "missing": self.missing,
            "duplicated": self.duplicated,
            "foreign": self.foreign,
            "wrong event_type": self.wrong_type,
        }
        return "; ".join(f"{name}: {_few(markers)}" for name, markers in parts.items() if markers)


def compare(sent: Iterable[Sent], items: Iterable[Mapping[str, Any]]) -> Comparison:
    expected = {request.marker: request.event_type for request in sent}
    found: Counter[str] = Counter()
    foreign, wrong_type = [], []
    for item in items:
        marker = _marker(item)
        if marker not in expected:
            foreign.append(marker or str(item.get("message_id")))
            continue
        found[marker] += 1
        if item.get("event_type") != expected[marker]:
            wrong_type.append(marker)
    return Comparison(
        missing=sorted(set(expected) - set(found)),
        duplicated=sorted(marker for marker, count in found.items() if count > 1),
        foreign=sorted(foreign),
        wrong_type=sorted(set(wrong_type)),
    )


def _marker(item: Mapping[str, Any]) -> str | None:
    params = item.get("params")
    marker = params.get(MARKER_PARAM) if isinstance(params, dict) else None
    return marker if isinstance(marker, str) else None


def _few(markers: list[str]) -> str:
    shown = ", ".join(markers[:5])
    return f"{len(markers)} ({shown}{', ...' if len(markers) > 5 else ''})"
