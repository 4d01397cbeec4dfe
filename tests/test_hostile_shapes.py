"""The requests bench/hostile_cost.py sends are what their names say: each fits the request and
header lines aiohttp accepts, each fresh one changes with every request, and the TC strings and
the click are refused or read as intended (so that the bench measures those paths)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from yarl import URL

from bench.hostile_cost import FRESH, Shape, query_shapes, shapes, tc_shapes
from bench.privacy_inputs import VENDOR_ID
from bench.signed_links import SIGNING_KEY
from tracker.integrity.signing import LinkVerifier
from tracker.privacy.tcf import MAX_RANGE_ENTRIES, Answer, Reading, read_consent
from tracker.schema.tracking.v1 import tracking_pb2 as pb

AIOHTTP_MAX_LINE = 8190  # its default max_line_size and max_field_size
A_REQUEST = "ABC-_9"  # what the Lua script puts in place of FRESH


def as_sent(text: str) -> str:
    return text.replace(FRESH, A_REQUEST)


@pytest.mark.parametrize("shape", shapes(), ids=lambda shape: shape.name)
def test_every_shape_fits_the_lines_aiohttp_accepts(shape: Shape) -> None:
    assert len(f"GET {shape.path} HTTP/1.1") <= AIOHTTP_MAX_LINE
    for name, value in shape.headers:
        assert len(f"{name}: {value}") <= AIOHTTP_MAX_LINE
    fresh = "new" in shape.name.lower() or "TC string" in shape.name or "bad sig" in shape.name
    if fresh and "segments" not in shape.name:
        assert shape.template().count(FRESH) >= 1
    # One placeholder per line at most: the script replaces the first in each.
    assert all(line.count(FRESH) <= 1 for line in shape.template().splitlines())


def consent_of(shape: Shape) -> str:
    return parse_qs(urlsplit(as_sent(shape.path)).query)["gdpr_consent"][0]


def test_the_tc_strings_take_the_paths_their_names_say() -> None:
    readings = {shape.name: read_consent(consent_of(shape), VENDOR_ID) for shape in tc_shapes()}
    assert list(readings.values()) == [
        Answer(Reading.IMPLAUSIBLE),  # 2,800 entries: refused from NumEntries
        Answer(Reading.GRANTED),  # the bit field: our vendor's bit
        Answer(Reading.NOT_GRANTED, MAX_RANGE_ENTRIES),  # every entry read
        Answer(Reading.IMPLAUSIBLE),  # 2-character segments: refused at the separators
    ]


def test_the_hostile_click_is_a_bad_signature() -> None:
    click = next(shape for shape in query_shapes() if shape.status == 302)
    query = URL(f"http://tracker.test{as_sent(click.path)}", encoded=True).query
    assert len(query) == 64
    assert LinkVerifier([SIGNING_KEY]).check("/v1/click", query, 0) == pb.IVT_BAD_SIGNATURE
