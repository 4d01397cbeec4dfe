"""Click ids: what a click on a program with `click_id_param` carries to its landing page.

The click id is the click event's own `message_id` (32 hex), so a conversion that brings it back
names the click itself. It is given only to a click that goes to the program's landing URL
(validation OK) and whose identifiers privacy does not withhold (CONSENT_DENIED, Sec-GPC/DNT);
such a click's event also carries the program's attribution window.

The redirect is `landing_url` with `{click_id_param}={click_id}` added to its query: the URL's
own query kept, a parameter of the same name (its percent-decoded name) taken out so that the
click id replaces it, the fragment kept and last. Everything but the id is the same for every
click on the program, so the answer is a TemplatedAnswer built once per program.
"""

from __future__ import annotations

from urllib.parse import unquote

from tracker.answers import SLOT, TemplatedAnswer
from tracker.memo import BoundedMemo
from tracker.programs.model import MAX_ATTRIBUTION_WINDOW_DAYS, Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb

# Field 27 for each window a program can have, serialized once (index: days).
WINDOW_FIELDS = tuple(
    pb.TrackingEvent(attribution_window_days=days).SerializeToString()
    for days in range(MAX_ATTRIBUTION_WINDOW_DAYS + 1)
)

CLICK_ID_CHARS = 32  # a message id: 32 hex digits
# Field 28's tag and length for a 32-character id, as upb writes them.
ORIGINAL_CLICK_PREFIX = pb.TrackingEvent(
    original_click_id="0" * CLICK_ID_CHARS
).SerializeToString()[:-CLICK_ID_CHARS]


def original_click_field(click_id: bytes) -> bytes:
    """Field 28 naming the first click of a double click (its id as Redis gave it back)."""
    return ORIGINAL_CLICK_PREFIX + click_id


def click_id_location(landing_url: str, param: str) -> tuple[str, str]:
    """(before, after): the redirect's Location is before + click_id + after."""
    address, hash_mark, fragment = landing_url.partition("#")
    path, _, query = address.partition("?")
    kept = [pair for pair in query.split("&") if pair and not _names(pair, param)]
    kept.append(param + "=")
    return path + "?" + "&".join(kept), hash_mark + fragment


def _names(pair: str, param: str) -> bool:
    """Whether the query pair `pair` (name, or name=value) is a parameter named `param`."""
    name = pair.partition("=")[0]
    return name == param or ("%" in name and unquote(name) == param)


class ClickIdRedirects:
    """One templated redirect per program with `click_id_param`, remade when the program's
    landing URL or parameter changes, at most `max_entries` of them."""

    def __init__(self, max_entries: int, headers: dict[str, str]) -> None:
        # program id -> (landing URL, parameter, the answer made from them)
        self._answers: BoundedMemo[str, tuple[str, str, TemplatedAnswer]] = BoundedMemo(max_entries)
        self._headers = headers  # the redirect's other headers

    def answer(self, program: Program, landing_url: str, param: str) -> TemplatedAnswer:
        cached = self._answers.get(program.program_id)
        if cached is not None and cached[0] == landing_url and cached[1] == param:
            return cached[2]
        before, after = click_id_location(landing_url, param)
        answer = TemplatedAnswer(302, {"Location": before + SLOT + after, **self._headers})
        return self._answers.remember(program.program_id, (landing_url, param, answer))[2]
