"""Reading an IAB TCF v2 TC string far enough to answer one question: has this user consented to
vendor V for purpose P? Pure logic, no I/O; it never raises, and anything malformed or
implausible answers no.

Format (IAB Tech Lab, "Consent string and vendor list formats v2", The Core String): segments
joined by '.', each base64url without padding, the core segment first. The core segment's bits,
most significant first: Version 6 (must be 2), Created 36, LastUpdated 36, CmpId 12,
CmpVersion 12, ConsentScreen 6, ConsentLanguage 12, VendorListVersion 12, TcfPolicyVersion 6,
IsServiceSpecific 1, UseNonStandardTexts 1, SpecialFeatureOptIns 12, PurposesConsent 24,
PurposesLITransparency 24, PurposeOneTreatment 1, PublisherCC 12, then the vendor consent
section: MaxVendorId 16, IsRangeEncoding 1, and either a bit field of MaxVendorId bits or
NumEntries 12 followed by entries (IsARange 1, StartOrOnlyVendorId 16, EndVendorId 16 if a
range).

What counts as malformed (the answer is then no, for every vendor and purpose):
- a string longer than MAX_TC_STRING characters (refused before anything else is looked at);
- any character outside the base64url alphabet and '.', including '=' padding (the format has
  none) and whitespace; an empty string or an empty segment (a leading, trailing or doubled '.');
- a segment of 1, 5, 9, ... characters: no string of bytes encodes to that, so it is not base64;
- a core segment whose Version is not 2;
- a core segment that ends before the end of the vendor consent section: every range entry is
  read, so a string truncated anywhere in that section is refused even if the entries read so
  far name the vendor;
- a range entry starting at vendor 0, ending before it starts, or ending past MaxVendorId.

What counts as implausible (no real CMP writes it; the answer is no as well, and it is found
before the costly part, the walk through the range entries, or stops that walk early):
- more than MAX_SEGMENTS segments (the core and at most three optional ones exist);
- a range section longer than the bit field it replaces: an encoder writes the shorter of the
  two (NumEntries and its entries against MaxVendorId bits), with one bit per entry and
  RANGE_SLACK_BITS of grace for the reference encoders' bookkeeping; found from NumEntries
  alone when even single-id entries would be too long, else once the entries are read;
- more than MAX_RANGE_ENTRIES range entries;
- a range entry that does not start after the previous one ends (out of order, or
  overlapping): encoders walk the vendor ids in order.
So the work on any string is bounded by its length (checks in C) and MAX_RANGE_ENTRIES (the one
loop in Python).

Segments after the core (disclosed/allowed vendors, publisher TC) and the rest of the core after
the vendor consent section (legitimate interests, publisher restrictions) are not read: they
cannot grant consent. The core is read as the bytes it encodes, as the IAB's reference decoders
read it (the few bits of a last, partial character are padding, and are ignored); only as many
of its characters are decoded as the question needs.

A vendor id above MaxVendorId is not consented (the spec's reading), not malformed.
"""

from __future__ import annotations

import binascii
import enum
from typing import NamedTuple

# Real TC strings are a few hundred characters. Global vendor list ids now reach about 1,400, so
# even a string with bit fields for every id in both vendor sections and a disclosed-vendors
# segment stays under 1,000. 8 KiB leaves room for the list growing several times over, and is
# about the longest request line servers accept at all (aiohttp's default limit is 8190), so a
# longer value cannot be a TC string that a client actually sent in a URL.
MAX_TC_STRING = 8192
# The core, then at most the disclosed vendors, allowed vendors and publisher TC segments.
MAX_SEGMENTS = 4
# Range encoding is written only when it is about as short as the bit field (see below), so a
# section of n single-id entries implies MaxVendorId >= 16 n - 4. Vendor ids reach about 1,400
# today: an honest range section has at most ~90 entries (real ones, a handful). More than 128
# would take a vendor list of over 2,000 ids, with consents split into runs of one or two ids.
# The bound is what keeps the walk through the entries (~0.3 us each) cheap.
MAX_RANGE_ENTRIES = 128
# Encoders choose the shorter encoding, give or take their bookkeeping: the IAB's JavaScript
# encoder counts a single-id entry as 16 bits (it takes 17) and decides before it writes its
# last entry, so its range sections may be longer than the bit field by one bit per entry and
# 16 more (the IAB's Java encoder stays within 11). Only a section longer than that is refused.
RANGE_SLACK_BITS = 16

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ALPHABET_AND_DOT = _ALPHABET + b"."
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_VERSION = 2
_PURPOSES_AT = 152  # bit of purpose 1; purpose p is at _PURPOSES_AT + p - 1
_MAX_PURPOSE = 24
_MAX_VENDOR_ID_AT = 213
_IS_RANGE_AT = 229
_VENDOR_SECTION_AT = 230  # the bit field, or NumEntries
_ENTRIES_AT = _VENDOR_SECTION_AT + 12
_SINGLE_BITS, _RANGE_BITS = 17, 33  # a range entry of one id, of a start and an end
_MAX_VENDOR = 0xFFFF


class Reading(enum.Enum):
    """What a TC string says to one question, and why."""

    GRANTED = "granted"
    NOT_GRANTED = "not granted"  # well-formed and plausible: purpose or vendor not consented
    MALFORMED = "malformed"
    IMPLAUSIBLE = "implausible"


class Answer(NamedTuple):
    reading: Reading
    entries_read: int = 0  # range entries walked: the one part whose work grows with the input


def consents_to(tc_string: str, vendor_id: int, purpose: int = 7) -> bool:
    """Whether `tc_string` is a well-formed, plausible TCF v2 TC string whose core segment gives
    consent to `purpose` (1-24) and to vendor `vendor_id` (1-65535). False for anything else;
    never raises."""
    return read_consent(tc_string, vendor_id, purpose).reading is Reading.GRANTED


def read_consent(tc_string: str, vendor_id: int, purpose: int = 7) -> Answer:
    """consents_to, with the reason for its answer and the work it took."""
    if not 1 <= vendor_id <= _MAX_VENDOR or not 1 <= purpose <= _MAX_PURPOSE:
        return Answer(Reading.NOT_GRANTED)
    core = _core_segment(tc_string)
    if isinstance(core, Reading):
        return Answer(core)
    # Enough for the header and the vendor section's first fields, NumEntries included.
    head = _decoded(core, _ENTRIES_AT)
    if len(head) * 8 <= _VENDOR_SECTION_AT or head[0] >> 2 != _VERSION:
        return Answer(Reading.MALFORMED)
    if not _field(head, _PURPOSES_AT + purpose - 1, 1):
        return Answer(Reading.NOT_GRANTED)  # no need to read the vendors: no either way
    max_vendor = _field(head, _MAX_VENDOR_ID_AT, 16)
    if _field(head, _IS_RANGE_AT, 1):
        return _read_ranges(core, head, max_vendor, vendor_id)
    return _read_bit_field(core, max_vendor, vendor_id)


def _core_segment(tc_string: str) -> bytes | Reading:
    """The core segment's base64url text, or why there is none (MALFORMED, or IMPLAUSIBLE for
    more segments than a TC string has). Every check runs in C, in a pass or two."""
    if len(tc_string) > MAX_TC_STRING or not tc_string.isascii():
        return Reading.MALFORMED
    text = tc_string.encode("ascii")
    if text.translate(None, _ALPHABET_AND_DOT):
        return Reading.MALFORMED  # a character outside base64url and the separator
    ends = _segment_ends(text)
    if len(ends) > MAX_SEGMENTS:
        return Reading.IMPLAUSIBLE
    starts = [0, *(end + 1 for end in ends[:-1])]
    # Empty, or a length that no number of bytes encodes to.
    if any((end - start) % 4 == 1 or end == start for start, end in zip(starts, ends, strict=True)):
        return Reading.MALFORMED
    return text[: ends[0]]


def _segment_ends(text: bytes) -> list[int]:
    """Where each segment ends (a '.' or the end), for at most MAX_SEGMENTS + 1 of them: found
    with find, without copying the segments that are not read."""
    ends: list[int] = []
    start = 0
    while len(ends) <= MAX_SEGMENTS:
        end = text.find(b".", start)
        if end < 0:
            ends.append(len(text))
            break
        ends.append(end)
        start = end + 1
    return ends


def _decoded(core: bytes, bits: int) -> bytes:
    """The bytes of the core's first `bits` bits (whole groups of four characters), or of the
    whole core if it is shorter. `core` is base64url of a valid length (checked)."""
    chars = -(-bits // 24) * 4
    text = core[:chars] if chars < len(core) else core
    text = text.translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(text) % 4)
    return binascii.a2b_base64(text)


def _core_bits(core: bytes) -> int:
    """How many bits the core encodes (whole bytes), without decoding it."""
    return len(core) * 6 // 8 * 8


def _field(raw: bytes, at: int, width: int) -> int:
    """The unsigned `width`-bit field at bit `at` (big-endian, bit 0 the first byte's highest),
    from just the bytes that hold it. The caller checks that `raw` is long enough."""
    first, stop = at >> 3, (at + width + 7) >> 3
    return int.from_bytes(raw[first:stop], "big") >> (stop * 8 - at - width) & ((1 << width) - 1)


def _read_bit_field(core: bytes, max_vendor: int, vendor_id: int) -> Answer:
    """A bit field: whole (so not truncated), then the one bit for the vendor."""
    if _core_bits(core) < _VENDOR_SECTION_AT + max_vendor:
        return Answer(Reading.MALFORMED)
    if vendor_id > max_vendor:
        return Answer(Reading.NOT_GRANTED)
    at = _VENDOR_SECTION_AT + vendor_id - 1
    granted = _field(_decoded(core, at + 1), at, 1)
    return Answer(Reading.GRANTED if granted else Reading.NOT_GRANTED)


def _longest(max_vendor: int, count: int) -> int:
    """The longest plausible range section (NumEntries and `count` entries), in bits."""
    return max_vendor + count + RANGE_SLACK_BITS


def _read_ranges(core: bytes, head: bytes, max_vendor: int, vendor_id: int) -> Answer:
    """The range section: refused from NumEntries alone when it cannot be plausible or cannot
    fit, else every entry read (so that a string cut short is refused). `head` is the core's
    first bytes, NumEntries included if the core holds it."""
    size = _core_bits(core)
    if size < _ENTRIES_AT:
        return Answer(Reading.MALFORMED)
    count = _field(head, _VENDOR_SECTION_AT, 12)
    if count > MAX_RANGE_ENTRIES or 12 + _SINGLE_BITS * count > _longest(max_vendor, count):
        return Answer(Reading.IMPLAUSIBLE)  # before decoding or reading a single entry
    if _ENTRIES_AT + _SINGLE_BITS * count > size:
        return Answer(Reading.MALFORMED)  # too short for even single-id entries: truncated
    end = min(size, _ENTRIES_AT + _RANGE_BITS * count)
    # The entries as one integer, from the byte that holds their start (one conversion in C).
    raw = _decoded(core, end)[_ENTRIES_AT >> 3 :]
    entries = _Entries(int.from_bytes(raw, "big"), len(raw) * 8, _ENTRIES_AT & 7)
    return _walk(entries, count, max_vendor, vendor_id)


class _Entries(NamedTuple):
    value: int  # the bits, most significant first
    size: int  # how many bits `value` holds
    start: int  # the bit where the first entry starts


def _walk(entries: _Entries, count: int, max_vendor: int, vendor_id: int) -> Answer:
    """Read `count` range entries, stopping at the first that is malformed, out of order or
    cut short. The one loop whose work grows with the input (at most MAX_RANGE_ENTRIES turns),
    so each turn is a shift and a mask of one integer and a few comparisons (~0.2 us; slicing
    '0'/'1' text and int() took ~0.35)."""
    value, size, at = entries
    previous = 0  # the last id of the entry before: each entry starts after it
    found = False
    for read in range(1, count + 1):
        left = size - at - _SINGLE_BITS  # the bits after IsARange and StartOrOnlyVendorId
        if left < 0:
            return Answer(Reading.MALFORMED, read)  # cut short: truncated
        first = last = value >> left & 0x1FFFF
        if first > 0xFFFF:  # IsARange: an end id follows
            left -= 16
            if left < 0:
                return Answer(Reading.MALFORMED, read)
            first &= 0xFFFF
            last = value >> left & 0xFFFF
        at = size - left
        if first <= previous or last < first or last > max_vendor:
            malformed = first == 0 or last < first or last > max_vendor
            return Answer(Reading.MALFORMED if malformed else Reading.IMPLAUSIBLE, read)
        previous = last
        if first <= vendor_id <= last:
            found = True
    if 12 + at - entries.start > _longest(max_vendor, count):
        return Answer(Reading.IMPLAUSIBLE, count)  # longer than the bit field would be
    return Answer(Reading.GRANTED if found else Reading.NOT_GRANTED, count)
