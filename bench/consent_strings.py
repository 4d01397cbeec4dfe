"""TC strings as consent management platforms send them, for the privacy benchmarks: realistic
ones (purposes 1-10 granted to ~500 vendors, VENDOR_ID among them, as a bit field or in ranges)
and strings of the most range entries the parser still reads (every one walked).

Global vendor list ids now reach about 1,400, and a CMP's string commonly names a few hundred
vendors. Random sets are drawn from a fixed seed, so that every run gets the same strings. Every
string is one that tracker/privacy/tcf.py reads as GRANTED for VENDOR_ID: a string it refuses
(malformed, or implausible: e.g. a range section longer than the bit field it replaces) would
measure the refusal, not the decode its path is named after.
"""

from __future__ import annotations

import random

from bench.privacy_inputs import VENDOR_ID
from tests.support.tcf_strings import ALPHABET, VENDOR_SECTION_AT, range_section_bits, tc_string
from tracker.privacy.consent import MEASURE_AD_PERFORMANCE
from tracker.privacy.tcf import MAX_RANGE_ENTRIES, Answer, Reading, read_consent

GVL_MAX_ID = 1400
STRING_VENDORS = 500
PURPOSES = tuple(range(1, 11))  # all ten TCF purposes, 7 among them
SEED = 7  # the same strings in every run
MAX_DRAWS = 100  # per distinct string wanted: random sets collide rarely, but the loop is bounded
# The most range entries the parser still reads (it refuses more before walking them), as
# single ids ENTRY_STEP apart (never adjacent: an encoder joins neighbours into one range),
# VENDOR_ID among them.
MOST_ENTRIES = MAX_RANGE_ENTRIES
ENTRY_STEP = 17
FIRST_ENTRY = VENDOR_ID % ENTRY_STEP or ENTRY_STEP  # so that the steps land on VENDOR_ID


def bit_field_vendors(rng: random.Random) -> set[int]:
    """STRING_VENDORS vendor ids of the list, ours among them, scattered."""
    others = [v for v in range(1, GVL_MAX_ID + 1) if v != VENDOR_ID]
    return {VENDOR_ID, *rng.sample(others, STRING_VENDORS - 1)}


def range_vendors(rng: random.Random) -> set[int]:
    """About STRING_VENDORS vendor ids in ~40 runs, ours among them: a set for which a CMP picks
    the range encoding (about as short as the bit field)."""
    chosen: set[int] = {VENDOR_ID}
    at = rng.randint(1, 20)
    while at <= GVL_MAX_ID and len(chosen) < STRING_VENDORS:
        run = rng.randint(4, 20)
        chosen.update(range(at, min(at + run, GVL_MAX_ID + 1)))
        at += run + rng.randint(5, 40)
    return chosen


def consent_string(rng: random.Random, *, ranges: bool) -> str:
    """A TC string granting purposes 1-10 to ~500 vendors, VENDOR_ID among them."""
    vendors = range_vendors(rng) if ranges else bit_field_vendors(rng)
    return tc_string(purposes=PURPOSES, vendors=vendors, ranges=ranges)


def reading_of(tc: str) -> Answer:
    """How the tracker reads `tc` for VENDOR_ID and the purpose it needs."""
    return read_consent(tc, VENDOR_ID, MEASURE_AD_PERFORMANCE)


def most_entries_strings(count: int) -> list[str]:
    """`count` distinct strings of MOST_ENTRIES single-id range entries, ours among them, every
    entry walked. They differ in MaxVendorId alone, from the range section's length in bits up:
    so the section is no longer than the bit field, as an encoder that writes the shorter of
    the two leaves it, and the parser reads it instead of refusing it as implausible."""
    ids = range(FIRST_ENTRY, FIRST_ENTRY + ENTRY_STEP * MOST_ENTRIES, ENTRY_STEP)
    entries = [(vendor, vendor) for vendor in ids]
    strings = [
        tc_string(
            purposes=PURPOSES,
            ranges=True,
            max_vendor_id=range_section_bits(entries) + n,
            range_entries=entries,
        )
        for n in range(count)
    ]
    for tc in strings:
        assert reading_of(tc) == Answer(Reading.GRANTED, MOST_ENTRIES), reading_of(tc)
    return strings


def granted_string() -> str:
    """The one TC string of the memo-hit paths and of the bench's HTTP consent case."""
    return consent_string(random.Random(SEED), ranges=False)


def distinct_strings(count: int, *, ranges: bool, seed: int) -> list[str]:
    """`count` distinct strings of consent_string, those the parser reads as GRANTED: about one
    range string in ten is longer than the bit field would be (a CMP writes the bit field then),
    and is drawn again."""
    rng = random.Random(seed)
    strings: dict[str, None] = {}  # ordered and distinct
    for _ in range(count * MAX_DRAWS):
        tc = consent_string(rng, ranges=ranges)
        if reading_of(tc).reading is Reading.GRANTED:
            strings[tc] = None
        if len(strings) == count:
            return list(strings)
    raise RuntimeError(f"{len(strings)} distinct TC strings of {count} wanted")


def range_entries(tc: str) -> int:
    """How many range entries the vendor consent section of a range-encoded `tc` holds."""
    raw = tc.split(".", 1)[0]
    bits = "".join(format(ALPHABET.index(char), "06b") for char in raw)
    at = VENDOR_SECTION_AT + 17  # past MaxVendorId and IsRangeEncoding: NumEntries
    return int(bits[at : at + 12], 2)
