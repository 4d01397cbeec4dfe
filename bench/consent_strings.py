"""TC strings as consent management platforms send them, for the privacy benchmarks: realistic
ones (purposes 1-10 granted to ~500 vendors, VENDOR_ID among them, as a bit field or in ranges)
and the longest a request line can carry.

Global vendor list ids now reach about 1,400, and a CMP's string commonly names a few hundred
vendors. Random sets are drawn from a fixed seed, so that every run gets the same strings.
"""

from __future__ import annotations

import random

from bench.privacy_inputs import VENDOR_ID
from tests.support.tcf_strings import ALPHABET, VENDOR_SECTION_AT, tc_string

GVL_MAX_ID = 1400
STRING_VENDORS = 500
PURPOSES = tuple(range(1, 11))  # all ten TCF purposes, 7 among them
SEED = 7  # the same strings in every run
MAX_DRAWS = 100  # per distinct string wanted: random sets collide rarely, but the loop is bounded
# The longest TC string a client can send: aiohttp refuses request lines over 8,190 bytes, so
# ~8,000 characters of single-id range entries (17 bits each), the most entries per character.
LONGEST_ENTRIES = 2_800


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


def longest_strings(count: int) -> list[str]:
    """`count` distinct strings of LONGEST_ENTRIES single-id entries (ours among them): the
    most work a decode can be made to do, as every entry is read."""
    return [
        tc_string(
            purposes=PURPOSES,
            ranges=True,
            max_vendor_id=first + LONGEST_ENTRIES,
            range_entries=[(v, v) for v in range(first + 1, first + LONGEST_ENTRIES + 1)],
        )
        for first in range(count)  # first < VENDOR_ID: each string names us
    ]


def granted_string() -> str:
    """The one TC string of the memo-hit paths and of the bench's HTTP consent case."""
    return consent_string(random.Random(SEED), ranges=False)


def distinct_strings(count: int, *, ranges: bool, seed: int) -> list[str]:
    rng = random.Random(seed)
    strings: dict[str, None] = {}  # ordered and distinct
    for _ in range(count * MAX_DRAWS):
        strings[consent_string(rng, ranges=ranges)] = None
        if len(strings) == count:
            return list(strings)
    raise RuntimeError(f"{len(strings)} distinct TC strings of {count} wanted")


def range_entries(tc: str) -> int:
    """How many range entries the vendor consent section of a range-encoded `tc` holds."""
    raw = tc.split(".", 1)[0]
    bits = "".join(format(ALPHABET.index(char), "06b") for char in raw)
    at = VENDOR_SECTION_AT + 17  # past MaxVendorId and IsRangeEncoding: NumEntries
    return int(bits[at : at + 12], 2)
