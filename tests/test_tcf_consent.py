"""TCF v2 TC strings (tracker.privacy.tcf) and the per-request consent decision
(tracker.privacy.consent), with strings built by tests.support.tcf_strings."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.support.tcf_strings import (
    ALPHABET,
    VENDOR_SECTION_AT,
    as_ranges,
    consent_section_end,
    core_bits,
    encode_bits,
    range_section_bits,
    tc_string,
)
from tracker.privacy import consent as consent_module
from tracker.privacy.consent import MAX_REMEMBERED, ConsentDecider
from tracker.privacy.tcf import (
    MAX_RANGE_ENTRIES,
    MAX_SEGMENTS,
    MAX_TC_STRING,
    RANGE_SLACK_BITS,
    Answer,
    Reading,
    consents_to,
    read_consent,
)
from tracker.schema.tracking.v1 import tracking_pb2 as pb

VENDOR = 755
OTHER = 91
ALL_PURPOSES = set(range(1, 25))
GRANTING = tc_string(purposes={1, 7}, vendors={OTHER, VENDOR})


def granted(tc: str, vendor: int = VENDOR) -> bool:
    return consents_to(tc, vendor, 7)


# --- the vendor consent section ------------------------------------------------------------------


@pytest.mark.parametrize("ranges", [False, True])
def test_vendor_and_purpose_7_consented(ranges: bool) -> None:
    tc = tc_string(purposes={1, 2, 7}, vendors={1, OTHER, VENDOR}, ranges=ranges)
    assert granted(tc)
    assert granted(tc, OTHER)
    assert granted(tc, 1)


@pytest.mark.parametrize("ranges", [False, True])
def test_purpose_7_missing_is_no(ranges: bool) -> None:
    tc = tc_string(purposes=ALL_PURPOSES - {7}, vendors={VENDOR}, ranges=ranges)
    assert not granted(tc)
    assert consents_to(tc, VENDOR, 8)


@pytest.mark.parametrize("ranges", [False, True])
def test_only_another_vendor_is_no(ranges: bool) -> None:
    tc = tc_string(purposes=ALL_PURPOSES, vendors={OTHER, VENDOR - 1, VENDOR + 1}, ranges=ranges)
    assert not granted(tc)
    assert granted(tc, OTHER)


@pytest.mark.parametrize("ranges", [False, True])
def test_no_vendors_at_all_is_no(ranges: bool) -> None:
    tc = tc_string(purposes=ALL_PURPOSES, vendors=set(), ranges=ranges)
    assert not granted(tc)
    assert not granted(tc, 1)


@pytest.mark.parametrize("ranges", [False, True])
def test_a_vendor_above_max_vendor_id_is_no(ranges: bool) -> None:
    tc = tc_string(purposes={7}, vendors={OTHER}, ranges=ranges)
    assert granted(tc, OTHER)
    assert not granted(tc, OTHER + 1)
    assert not granted(tc, 0xFFFF)


def test_a_bit_field_with_max_vendor_id_above_the_highest_consent() -> None:
    tc = tc_string(purposes={7}, vendors={VENDOR}, max_vendor_id=VENDOR + 500)
    assert granted(tc)
    assert not granted(tc, VENDOR + 500)


def test_single_id_range_entries() -> None:
    tc = tc_string(purposes={7}, ranges=True, range_entries=[(OTHER, OTHER), (VENDOR, VENDOR)])
    assert granted(tc)
    assert granted(tc, OTHER)
    assert not granted(tc, VENDOR - 1)
    assert not granted(tc, VENDOR + 1)


def test_a_start_to_end_range_includes_both_edges() -> None:
    tc = tc_string(purposes={7}, ranges=True, range_entries=[(1, 2), (700, 800)])
    assert [granted(tc, vendor) for vendor in (699, 700, 755, 800, 801)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert granted(tc, 1)
    assert granted(tc, 2)
    assert not granted(tc, 3)


def test_the_vendor_in_the_last_of_the_most_range_entries_read() -> None:
    # Single ids 17 apart: the range section is as long as the bit field would be.
    entries = [(17 * n + 1, 17 * n + 1) for n in range(MAX_RANGE_ENTRIES)]
    last = entries[-1][0]
    tc = tc_string(purposes={7}, ranges=True, range_entries=entries)
    assert read_consent(tc, last) == Answer(Reading.GRANTED, MAX_RANGE_ENTRIES)
    assert read_consent(tc, last - 1) == Answer(Reading.NOT_GRANTED, MAX_RANGE_ENTRIES)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([(0, 0), (VENDOR, VENDOR)], id="single id 0"),
        pytest.param([(0, 10), (VENDOR, VENDOR)], id="range from 0"),
        pytest.param([(VENDOR, VENDOR), (20, 10)], id="start after end"),
    ],
)
def test_a_bad_range_entry_makes_the_whole_string_no(entries: list[tuple[int, int]]) -> None:
    tc = tc_string(purposes={7}, ranges=True, range_entries=entries)
    assert not granted(tc)
    assert not granted(tc, 5)


def test_a_range_past_max_vendor_id_makes_the_whole_string_no() -> None:
    tc = tc_string(purposes={7}, ranges=True, range_entries=[(VENDOR, VENDOR)], max_vendor_id=800)
    assert granted(tc)
    beyond = tc_string(
        purposes={7}, ranges=True, range_entries=[(VENDOR, VENDOR), (790, 801)], max_vendor_id=800
    )
    assert not granted(beyond)


def test_any_purpose_can_be_asked_for() -> None:
    tc = tc_string(purposes={1, 24}, vendors={VENDOR})
    assert consents_to(tc, VENDOR, 1)
    assert consents_to(tc, VENDOR, 24)
    assert not consents_to(tc, VENDOR, 2)


@pytest.mark.parametrize(("vendor", "purpose"), [(0, 7), (-1, 7), (0x10000, 7), (1, 0), (1, 25)])
def test_out_of_range_questions_are_no(vendor: int, purpose: int) -> None:
    tc = tc_string(purposes=ALL_PURPOSES, vendors={1})
    assert consents_to(tc, 1, 7)
    assert not consents_to(tc, vendor, purpose)


# --- what surrounds the core segment ------------------------------------------------------------


def test_other_segments_are_ignored_but_must_be_base64url() -> None:
    core = GRANTING
    assert granted(f"{core}.IFoEUQQgAIQwgIwQ.QAagAQAgAIAwgA.cAAAAAAAITg")
    assert granted(f"{core}.xy")  # base64 for one byte
    assert not granted(f"{core}.x")  # base64 for no number of bytes
    assert not granted(f"{core}.xyzab")
    assert not granted(f"{core}.cAAAAAAAITg=")  # padding
    assert not granted(f"{core}.")
    assert not granted(f"{core}..IFoE")
    assert not granted(f".{core}")
    assert not granted(f"{core}.ab+c")  # base64, not base64url
    assert not granted(f"{core}.ab/c")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="dot"),
        pytest.param("C", id="one character"),
        pytest.param(GRANTING + "A" * ((1 - len(GRANTING)) % 4), id="a length base64 never has"),
        pytest.param(GRANTING + "==", id="padding"),
        pytest.param(GRANTING + "\n", id="newline"),
        pytest.param(" " + GRANTING, id="space"),
        pytest.param(GRANTING[:10] + "é" + GRANTING[11:], id="non-ASCII"),
        pytest.param(GRANTING[:10] + "٣" + GRANTING[11:], id="Unicode digit"),
        pytest.param(GRANTING.replace("C", "+", 1), id="base64 alphabet"),
        pytest.param(GRANTING + "A" * MAX_TC_STRING, id="too long"),
    ],
)
def test_malformed_strings_are_no(text: str) -> None:
    assert not granted(text)


@pytest.mark.parametrize("version", [0, 1, 3, 63])
def test_only_version_2_is_read(version: int) -> None:
    assert not granted(tc_string(purposes={7}, vendors={VENDOR}, version=version))


def filler(length: int) -> str:
    """Segments of valid base64url lengths, `length` characters in all with their dots."""
    if length % 4 == 1:
        return "AA." + "A" * (length - 3)
    return "A" * length


def test_the_longest_string_is_still_read() -> None:
    tc = GRANTING + "." + filler(MAX_TC_STRING - len(GRANTING) - 1)
    assert len(tc) == MAX_TC_STRING
    assert granted(tc)
    assert not granted(tc + "A")


@pytest.mark.parametrize("ranges", [False, True])
def test_truncated_at_every_character(ranges: bool) -> None:
    """Every prefix of the core: no until the whole vendor consent section is there (in whole
    bytes), yes from then on (the legitimate-interest section that follows is not read), except
    for lengths that are not base64."""
    bits = core_bits(purposes={7}, vendors={OTHER, VENDOR, VENDOR + 2}, ranges=ranges)
    needed = consent_section_end(bits)
    core = encode_bits(bits)
    assert granted(core)
    for length in range(len(core)):
        whole_bytes = length * 6 // 8 * 8
        expected = length % 4 != 1 and whole_bytes >= needed
        assert granted(core[:length]) == expected, length


def test_truncated_inside_a_range_entry_after_the_one_naming_the_vendor() -> None:
    bits = core_bits(purposes={7}, ranges=True, range_entries=[(VENDOR, VENDOR), (800, 900)])
    end = consent_section_end(bits)
    cuts = [cut for cut in range(end - 33, end) if cut + (-cut % 8) < end]  # in the last entry
    assert len(cuts) >= 26
    for cut in cuts:
        assert not granted(encode_bits(bits[:cut])), cut
    assert granted(encode_bits(bits[:end]))


def test_truncated_inside_a_bit_field_after_the_vendors_bit() -> None:
    bits = core_bits(purposes={7}, vendors={VENDOR}, max_vendor_id=VENDOR + 30)
    end = consent_section_end(bits)
    assert end == VENDOR_SECTION_AT + 17 + VENDOR + 30
    cuts = [cut for cut in range(end - 29, end) if cut + (-cut % 8) < end]  # after VENDOR's bit
    assert len(cuts) >= 22
    for cut in cuts:
        assert not granted(encode_bits(bits[:cut])), cut
    assert granted(encode_bits(bits[:end]))


# --- published strings ---------------------------------------------------------------------------

# From the IAB's reference Java decoder's tests (iabtcf-java, TCStringV2Test): purposes 3-9 and
# vendors 23, 37, 47, 48, 53, 65, 98 consented, as a bit field.
IAB_BIT_FIELD = "COrEAV4OrXx94ACABBENAHCIAD-AAAAAAACAAxAAAAgAIAwgAgAAAAEAgQAAAAAEAYQAQAAAACAAAABAAA"
IAB_BIT_FIELD_VENDORS = {23, 37, 47, 48, 53, 65, 98}
# Same source: range encoding consenting to vendors 702 and 703 (one range), no purposes.
IAB_RANGE = (
    "COwBOpCOwBOpCLqAAAENAPCAAAAAAAAAAAAAFfwAYFfAV-BVkAGBVYFWAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIA"
    "AAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw"
)
# The spec's own example starts with 'B': Version 1, which we do not read.
SPEC_VERSION_1 = "BObdrPUOevsguAfDqFENCNAAAAAmeAAA.OevsguAfDq"


def with_purpose_7(tc: str) -> str:
    """`tc` with the PurposesConsent bit for purpose 7 set: core bit 158, which is bit 2 (from the
    left, of 0-5) of character 26."""
    char = ALPHABET[ALPHABET.index(tc[26]) | 0b001000]
    return tc[:26] + char + tc[27:]


def test_a_published_bit_field_string() -> None:
    answers = {
        (vendor, purpose): consents_to(IAB_BIT_FIELD, vendor, purpose)
        for vendor in range(1, 130)
        for purpose in range(1, 25)
    }
    assert {key for key, yes in answers.items() if yes} == {
        (vendor, purpose) for vendor in IAB_BIT_FIELD_VENDORS for purpose in range(3, 10)
    }


def test_a_published_range_string() -> None:
    assert not any(granted(IAB_RANGE, vendor) for vendor in (701, 702, 703))
    with_consent = with_purpose_7(IAB_RANGE)
    assert [granted(with_consent, vendor) for vendor in (701, 702, 703, 704)] == [
        False,
        True,
        True,
        False,
    ]


def test_the_specs_version_1_example_is_no() -> None:
    assert not any(consents_to(SPEC_VERSION_1, vendor, 1) for vendor in range(1, 100))


def test_a_real_world_looking_string_from_the_encoder() -> None:
    vendors = {1, 2, 4, 10, 11, 12, 13, 21, 23, 25, 28, 32, 39, 50, 52, 68, 76, 91, 755, 793}
    for ranges in (False, True):
        tc = tc_string(
            purposes={1, 2, 3, 4, 7, 9, 10},
            vendors=vendors,
            ranges=ranges,
            extra_segments=["IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEA", "YAAAAAAAAAAA"],
        )
        assert tc[0] == "C"  # Version 2 is the first character
        assert {vendor for vendor in range(1, 1000) if granted(tc, vendor)} == vendors


# --- fuzzing -------------------------------------------------------------------------------------

base64url_text = st.text(alphabet=ALPHABET + ".=", max_size=400)


def mutated(tc: str, data: st.DataObject) -> str:
    """`tc` with a few characters replaced, inserted or removed, then maybe cut short."""
    text = list(tc)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        char = data.draw(st.sampled_from(ALPHABET + ".=é\x00 "), label="char")
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="action")
        if action == "insert" or at == len(text):
            text.insert(at, char)
        elif action == "replace":
            text[at] = char
        else:
            del text[at]
    cut = data.draw(st.integers(0, len(text)), label="cut")
    return "".join(text[:cut])


def assert_never_raises(text: str) -> None:
    assert consents_to(text, VENDOR, 7) in (True, False)
    assert read_consent(text, VENDOR, 7).entries_read <= MAX_RANGE_ENTRIES
    assert consents_to(text, 1, 1) in (True, False)
    decider = ConsentDecider(VENDOR)
    decision = decider.decide("1", text)
    assert decision in (pb.CONSENT_GRANTED, pb.CONSENT_DENIED)
    assert decider.decide("1", text) == decision
    assert decider.decide(text, text) in (pb.CONSENT_NOT_APPLICABLE, pb.CONSENT_DENIED)


@hypothesis_settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    assert_never_raises(text)


@hypothesis_settings(max_examples=300)
@given(base64url_text)
def test_any_base64url_text_never_raises(text: str) -> None:
    assert_never_raises(text)


@hypothesis_settings(max_examples=300)
@given(st.booleans(), st.data())
def test_mutated_valid_strings_never_raise(ranges: bool, data: st.DataObject) -> None:
    tc = tc_string(purposes={7}, vendors={3, 4, 5, OTHER, VENDOR}, ranges=ranges)
    assert_never_raises(mutated(tc, data))


@hypothesis_settings(max_examples=300)
@given(
    purposes=st.sets(st.integers(1, 24)),
    vendors=st.sets(st.integers(1, 1200), max_size=60),
    ranges=st.booleans(),
    asked=st.integers(1, 1210),
    extra_max=st.integers(0, 20),
)
def test_the_answer_matches_the_sets_encoded(
    purposes: set[int], vendors: set[int], ranges: bool, asked: int, extra_max: int
) -> None:
    max_vendor_id = max(vendors, default=0) + extra_max
    tc = tc_string(purposes=purposes, vendors=vendors, ranges=ranges, max_vendor_id=max_vendor_id)
    # A range section longer than the bit field (beyond the slack) is what no encoder writes.
    entries = as_ranges(vendors)
    longest = max_vendor_id + len(entries) + RANGE_SLACK_BITS
    plausible = not ranges or range_section_bits(entries) <= longest
    assert granted(tc, asked) == (7 in purposes and asked in vendors and plausible)
    for vendor in vendors:
        assert granted(tc, vendor) == (7 in purposes and plausible)


# --- implausible strings, and the work a string can cause ---------------------------------------

# The longest range section a URL can carry: 2,800 single ids (odd ids, our vendor among them)
# under MaxVendorId 65535, in 7,979 characters (aiohttp accepts request lines up to 8,190 bytes).
MAXIMAL_RANGES = tc_string(
    purposes={7},
    ranges=True,
    range_entries=[(2 * n + 1, 2 * n + 1) for n in range(2_800)],
    max_vendor_id=0xFFFF,
)


def ranges_string(entries: list[tuple[int, int]], max_vendor_id: int = 0xFFFF) -> str:
    return tc_string(purposes={7}, ranges=True, range_entries=entries, max_vendor_id=max_vendor_id)


def test_a_string_of_more_range_entries_than_real_ones_have_is_refused_before_reading_one() -> None:
    assert VENDOR % 2 == 1  # named by an entry of the maximal string
    assert len(MAXIMAL_RANGES) < MAX_TC_STRING
    assert read_consent(MAXIMAL_RANGES, VENDOR) == Answer(Reading.IMPLAUSIBLE, 0)
    most = [(2 * n + 1, 2 * n + 1) for n in range(MAX_RANGE_ENTRIES)]
    assert read_consent(ranges_string(most), 1) == Answer(Reading.GRANTED, MAX_RANGE_ENTRIES)
    one_more = [*most, (2 * MAX_RANGE_ENTRIES + 1, 2 * MAX_RANGE_ENTRIES + 1)]
    assert read_consent(ranges_string(one_more), 1) == Answer(Reading.IMPLAUSIBLE, 0)


def test_a_range_section_longer_than_the_bit_field_is_implausible() -> None:
    """An encoder writes the shorter encoding: NumEntries and the entries against MaxVendorId
    bits, with a bit per entry and RANGE_SLACK_BITS of grace for the encoders' bookkeeping."""
    singles = [(2 * n + 1, 2 * n + 1) for n in range(10)]
    as_long = range_section_bits(singles) - len(singles) - RANGE_SLACK_BITS
    assert read_consent(ranges_string(singles, as_long), 19) == Answer(Reading.GRANTED, 10)
    # One bit too long: known from NumEntries alone, as every entry here is a single id.
    assert read_consent(ranges_string(singles, as_long - 1), 19) == Answer(Reading.IMPLAUSIBLE)
    # Known only once the entries are read, when they are ranges of a start and an end.
    spans = [(4 * n + 1, 4 * n + 2) for n in range(10)]
    too_long = range_section_bits(spans) - len(spans) - RANGE_SLACK_BITS - 1
    assert read_consent(ranges_string(spans, too_long), 2) == Answer(Reading.IMPLAUSIBLE, 10)
    # The longest range section the IAB's JavaScript encoder writes instead of a bit field: 80
    # single ids counted as 16 bits each, and compared before the last one is written.
    written = [(1278 - 2 * n, 1278 - 2 * n) for n in reversed(range(80))]
    assert 12 + 16 * 80 - 16 < 1278 < range_section_bits(written)
    assert read_consent(ranges_string(written, 1278), 1278) == Answer(Reading.GRANTED, 80)
    # What the IAB's published range string and the encoder helper write is plausible.
    assert granted(with_purpose_7(IAB_RANGE), 702)
    assert granted(tc_string(purposes={7}, vendors={1, 2, 3, VENDOR}, ranges=True))


@pytest.mark.parametrize(
    ("entries", "stops_at"),
    [
        pytest.param([(10, 20), (15, 30), (40, 40)], 2, id="overlapping"),
        pytest.param([(10, 20), (20, 30), (40, 40)], 2, id="sharing an id"),
        pytest.param([(40, 40), (10, 20), (VENDOR, VENDOR)], 2, id="out of order"),
        pytest.param([(VENDOR, VENDOR), (VENDOR, VENDOR)], 2, id="repeated"),
    ],
)
def test_entries_out_of_order_or_overlapping_stop_the_walk(
    entries: list[tuple[int, int]], stops_at: int
) -> None:
    assert read_consent(ranges_string(entries), VENDOR) == Answer(Reading.IMPLAUSIBLE, stops_at)
    assert ConsentDecider(VENDOR).decide("1", ranges_string(entries)) == pb.CONSENT_DENIED


def test_adjacent_entries_are_plausible() -> None:
    """Encoders merge consecutive ids into one range, but nothing is wrong with two entries
    that touch."""
    tc = ranges_string([(10, 20), (21, 30), (VENDOR, VENDOR)])
    assert read_consent(tc, 21) == Answer(Reading.GRANTED, 3)


@pytest.mark.parametrize(
    ("entries", "stops_at"),
    [
        pytest.param([(5, 5), (0, 0)], 2, id="id 0"),
        pytest.param([(5, 5), (30, 20)], 2, id="end before start"),
        pytest.param([(5, 5), (30, 0xFFFF), (VENDOR, VENDOR)], 2, id="past MaxVendorId"),
    ],
)
def test_a_malformed_entry_stops_the_walk(entries: list[tuple[int, int]], stops_at: int) -> None:
    tc = ranges_string(entries, max_vendor_id=1000)
    assert read_consent(tc, VENDOR) == Answer(Reading.MALFORMED, stops_at)


def test_more_segments_than_a_tc_string_has_are_implausible() -> None:
    four = ".".join([GRANTING, *["IFoEUQQgAIQwgIwQ"] * (MAX_SEGMENTS - 1)])
    assert read_consent(four, VENDOR) == Answer(Reading.GRANTED)
    assert read_consent(four + ".AA", VENDOR) == Answer(Reading.IMPLAUSIBLE)
    # The most segments 8 KiB can hold, each of two characters: refused at the separators.
    tiny = GRANTING + ".AA" * ((MAX_TC_STRING - len(GRANTING)) // 3)
    assert len(tiny) <= MAX_TC_STRING
    assert read_consent(tiny, VENDOR) == Answer(Reading.IMPLAUSIBLE)


def test_an_implausible_string_naming_our_vendor_is_denied() -> None:
    decider = ConsentDecider(VENDOR)
    assert decider.decide("1", MAXIMAL_RANGES) == pb.CONSENT_DENIED
    plausible = ranges_string([(2 * n + 1, 2 * n + 1) for n in range(MAX_RANGE_ENTRIES)])
    assert decider.decide("1", plausible) == pb.CONSENT_DENIED  # our vendor is past its entries
    assert decider.decide("1", ranges_string([(VENDOR, VENDOR)])) == pb.CONSENT_GRANTED


def test_the_widest_bit_field_a_url_carries_is_read() -> None:
    vendors = set(range(1, 48_000, 2))
    tc = tc_string(purposes={7}, vendors=vendors)
    assert MAX_TC_STRING - 200 < len(tc) <= MAX_TC_STRING
    assert read_consent(tc, VENDOR) == Answer(Reading.GRANTED)
    assert read_consent(tc, 47_999) == Answer(Reading.GRANTED)
    assert read_consent(tc, VENDOR + 1) == Answer(Reading.NOT_GRANTED)
    assert read_consent(tc[:-12], VENDOR) == Answer(Reading.MALFORMED)  # the field cut short


# A plain reading of the rules in tcf's docstring, from '0'/'1' text: slow, and easy to check.


def reference_bits(tc: str) -> str | None:
    """The core's bits in whole bytes, or None when the string is malformed or has too many
    segments."""
    segments = tc.split(".")
    if (
        len(tc) > MAX_TC_STRING
        or any(char not in ALPHABET + "." for char in tc)
        or len(segments) > MAX_SEGMENTS
        or any(not segment or len(segment) % 4 == 1 for segment in segments)
    ):
        return None
    bits = "".join(format(ALPHABET.index(char), "06b") for char in segments[0])
    return bits[: len(bits) // 8 * 8]


def reference_entries(bits: str) -> list[tuple[int, int]] | None:
    """The range entries, or None when the core ends inside them."""
    count = int(bits[VENDOR_SECTION_AT + 17 : VENDOR_SECTION_AT + 29], 2)
    at, entries = VENDOR_SECTION_AT + 29, []
    for _ in range(count):
        width = 33 if bits[at : at + 1] == "1" else 17
        if at + width > len(bits):
            return None
        first = int(bits[at + 1 : at + 17], 2)
        entries.append((first, int(bits[at + 17 : at + 33], 2) if width == 33 else first))
        at += width
    return entries


def reference_consents(tc: str, vendor: int) -> bool:
    bits = reference_bits(tc)
    header = bits is not None and len(bits) > VENDOR_SECTION_AT + 17 and int(bits[:6], 2) == 2
    if bits is None or not header or bits[151 + 7] != "1":  # purpose 7's bit
        return False
    max_vendor = int(bits[VENDOR_SECTION_AT : VENDOR_SECTION_AT + 16], 2)
    if bits[VENDOR_SECTION_AT + 16] == "0":  # a bit field; vendor v's bit follows v - 1 others
        whole = len(bits) >= VENDOR_SECTION_AT + 17 + max_vendor
        return whole and vendor <= max_vendor and bits[VENDOR_SECTION_AT + 16 + vendor] == "1"
    entries = reference_entries(bits) if len(bits) >= VENDOR_SECTION_AT + 29 else None
    if entries is None or len(entries) > MAX_RANGE_ENTRIES:
        return False
    plausible = range_section_bits(entries) <= max_vendor + len(entries) + RANGE_SLACK_BITS
    well_formed = all(0 < first <= last <= max_vendor for first, last in entries)
    in_order = all(earlier[1] < later[0] for earlier, later in pairwise(entries))
    named = any(first <= vendor <= last for first, last in entries)
    return plausible and well_formed and in_order and named


ENTRY = st.tuples(st.integers(0, 300), st.integers(0, 300))


def ascending(steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Entries in order without overlaps, from (gap after the previous entry, span) pairs."""
    entries, last = [], 0
    for gap, span in steps:
        entries.append((last + gap, last + gap + span))
        last += gap + span
    return entries


ORDERED = st.lists(st.tuples(st.integers(1, 12), st.integers(0, 2)), max_size=140).map(ascending)


@hypothesis_settings(max_examples=400)
@given(
    entries=st.lists(ENTRY, max_size=MAX_RANGE_ENTRIES + 3) | ORDERED,
    max_vendor_id=st.sampled_from([0, 20, 250, 300, 1_500, 2_000, 0xFFFF]),
    cut=st.sampled_from([0, 0, 0, 1, 8, 17, 33]) | st.integers(0, 64),
    data=st.data(),
)
def test_range_sections_decide_as_the_rules_say(
    entries: list[tuple[int, int]], max_vendor_id: int, cut: int, data: st.DataObject
) -> None:
    """Any range section, well-formed or not, plausible or not, whole or cut short: the answer
    is the plain reading's, and the walk never reads more than MAX_RANGE_ENTRIES entries."""
    named = [vendor for entry in entries for vendor in entry if vendor > 0]
    asked = data.draw(st.sampled_from(named) if named else st.integers(1, 310), label="asked")
    bits = core_bits(purposes={7}, ranges=True, range_entries=entries, max_vendor_id=max_vendor_id)
    tc = encode_bits(bits[: len(bits) - cut])
    answer = read_consent(tc, asked)
    assert answer.entries_read <= min(len(entries), MAX_RANGE_ENTRIES)
    assert (answer.reading is Reading.GRANTED) == reference_consents(tc, asked)


# --- the decision --------------------------------------------------------------------------------

DENYING = tc_string(purposes=ALL_PURPOSES - {7}, vendors={VENDOR})


@pytest.mark.parametrize("gdpr_consent", [None, "", GRANTING, DENYING, "garbage"])
def test_no_gdpr_parameter_or_0_is_not_applicable(gdpr_consent: str | None) -> None:
    decider = ConsentDecider(VENDOR)
    assert decider.decide(None, gdpr_consent) == pb.CONSENT_NOT_APPLICABLE
    assert decider.decide("0", gdpr_consent) == pb.CONSENT_NOT_APPLICABLE


def test_gdpr_1_with_a_granting_string_is_granted() -> None:
    assert ConsentDecider(VENDOR).decide("1", GRANTING) == pb.CONSENT_GRANTED


@pytest.mark.parametrize(
    "gdpr_consent",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("garbage!", id="malformed"),
        pytest.param(DENYING, id="purpose 7 refused"),
        pytest.param(tc_string(purposes={7}, vendors={OTHER}), id="another vendor only"),
        pytest.param(GRANTING[:-20], id="truncated"),
        pytest.param(GRANTING + "A" * MAX_TC_STRING, id="too long"),
    ],
)
def test_gdpr_1_with_anything_else_is_denied(gdpr_consent: str | None) -> None:
    assert ConsentDecider(VENDOR).decide("1", gdpr_consent) == pb.CONSENT_DENIED


def test_gdpr_1_without_a_vendor_id_is_denied() -> None:
    decider = ConsentDecider(None)
    assert decider.decide("1", GRANTING) == pb.CONSENT_DENIED
    assert decider.decide(None, GRANTING) == pb.CONSENT_NOT_APPLICABLE
    assert len(decider._memo) == 0


@pytest.mark.parametrize(
    "gdpr",
    ["", "true", "false", "yes", "2", "-1", "00", " 0", "0 ", "1 ", "01", "${GDPR}", "\u0661"],
)
def test_any_other_gdpr_value_is_denied_even_with_a_granting_string(gdpr: str) -> None:
    decider = ConsentDecider(VENDOR)
    assert decider.decide(gdpr, GRANTING) == pb.CONSENT_DENIED
    assert decider.decide(gdpr, None) == pb.CONSENT_DENIED


@pytest.mark.parametrize("vendor_id", [0, -1, 0x10000])
def test_an_impossible_vendor_id_is_refused_at_construction(vendor_id: int) -> None:
    with pytest.raises(ValueError, match="vendor id"):
        ConsentDecider(vendor_id)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The TC strings the decider reads (not answered from its memo), in order."""
    strings: list[str] = []

    def counting(tc: str, vendor_id: int, purpose: int = 7) -> Answer:
        strings.append(tc)
        return read_consent(tc, vendor_id, purpose)

    monkeypatch.setattr(consent_module, "read_consent", counting)
    return strings


def test_the_memo_answers_the_second_time(decoded: list[str]) -> None:
    decider = ConsentDecider(VENDOR)
    assert decider.decide("1", GRANTING) == pb.CONSENT_GRANTED
    assert decider.decide("1", DENYING) == pb.CONSENT_DENIED
    assert dict(decider._memo) == {GRANTING: pb.CONSENT_GRANTED, DENYING: pb.CONSENT_DENIED}
    assert decider.decide("1", GRANTING) == pb.CONSENT_GRANTED
    assert decider.decide("1", DENYING) == pb.CONSENT_DENIED
    assert decoded == [GRANTING, DENYING]
    # gdpr=0 and absent never look at the memo, nor add to it.
    assert decider.decide("0", "another") == pb.CONSENT_NOT_APPLICABLE
    assert len(decider._memo) == 2


def test_the_memo_stays_within_its_bound() -> None:
    decider = ConsentDecider(VENDOR, max_entries=8)
    for vendor in range(1, 50):
        tc = tc_string(purposes={7}, vendors={vendor})
        expected = pb.CONSENT_GRANTED if vendor == VENDOR else pb.CONSENT_DENIED
        assert decider.decide("1", tc) == expected
        assert decider.decide("1", tc) == expected
        assert len(decider._memo) <= 8


def test_long_or_non_ascii_strings_are_not_memoized() -> None:
    decider = ConsentDecider(VENDOR)
    too_long = GRANTING + "." + "A" * MAX_TC_STRING
    non_ascii = GRANTING + ".é"
    for text in (too_long, non_ascii):
        assert decider.decide("1", text) == pb.CONSENT_DENIED
    assert len(decider._memo) == 0


def test_strings_longer_than_a_cmp_writes_are_read_every_time_and_never_remembered(
    decoded: list[str],
) -> None:
    decider = ConsentDecider(VENDOR)
    padded = GRANTING + "." + "A" * (MAX_REMEMBERED - len(GRANTING))  # a second segment
    assert MAX_REMEMBERED < len(padded) <= MAX_TC_STRING
    for _ in range(2):
        assert decider.decide("1", padded) == pb.CONSENT_GRANTED
    assert decoded == [padded, padded]
    assert len(decider._memo) == 0


def test_the_decider_tells_how_many_range_entries_its_last_decision_walked() -> None:
    decider = ConsentDecider(VENDOR)
    entries = [(2 * n + 1, 2 * n + 1) for n in range(40)]
    walked = tc_string(purposes={7}, ranges=True, range_entries=entries, max_vendor_id=0xFFFF)
    decider.decide("1", walked)
    assert decider.entries_read == 40
    decider.decide("1", walked)  # remembered: nothing walked
    assert decider.entries_read == 0
    decider.decide("1", tc_string(purposes={7}, vendors={VENDOR}))  # a bit field
    assert decider.entries_read == 0
