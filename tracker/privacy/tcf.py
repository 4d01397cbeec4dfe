"""Reading an IAB TCF v2 TC string far enough to answer one question: has this user consented to
vendor V for purpose P? Pure logic, no I/O; it never raises, and anything malformed answers no.

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
Segments after the core (disclosed/allowed vendors, publisher TC) and the rest of the core after
the vendor consent section (legitimate interests, publisher restrictions) are not read: they
cannot grant consent. The core is read as the bytes it encodes, as the IAB's reference decoders
read it (the few bits of a last, partial character are padding, and are ignored).

A vendor id above MaxVendorId is not consented (the spec's reading), not malformed.
"""

from __future__ import annotations

import base64
import re

# Real TC strings are a few hundred characters. Global vendor list ids now reach about 1,400, so
# even a string with bit fields for every id in both vendor sections and a disclosed-vendors
# segment stays under 1,000. 8 KiB leaves room for the list growing several times over, and is
# about the longest request line servers accept at all (aiohttp's default limit is 8190), so a
# longer value cannot be a TC string that a client actually sent in a URL.
MAX_TC_STRING = 8192

# A segment is base64url for whole bytes: two or more characters, and never one more than a
# multiple of four. ASCII letters and digits, '-' and '_' only (explicit ranges, so no Unicode
# digit sneaks in as \d would let it).
_SEGMENT = r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,4})"
_SANE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")

_VERSION = 2
_PURPOSES_AT = 152  # bit of purpose 1; purpose p is at _PURPOSES_AT + p - 1
_MAX_PURPOSE = 24
_MAX_VENDOR_ID_AT = 213
_IS_RANGE_AT = 229
_VENDOR_SECTION_AT = 230  # the bit field, or NumEntries
_ENTRIES_AT = _VENDOR_SECTION_AT + 12
_MAX_VENDOR = 0xFFFF


def consents_to(tc_string: str, vendor_id: int, purpose: int = 7) -> bool:
    """Whether `tc_string` is a well-formed TCF v2 TC string whose core segment gives consent to
    `purpose` (1-24) and to vendor `vendor_id` (1-65535). False for anything else; never raises."""
    if (
        len(tc_string) > MAX_TC_STRING
        or not 1 <= vendor_id <= _MAX_VENDOR
        or not 1 <= purpose <= _MAX_PURPOSE
        or not _SANE.fullmatch(tc_string)
    ):
        return False
    core = tc_string.split(".", 1)[0]
    # Cannot fail: _SANE let through only the alphabet, in lengths that are whole bytes.
    raw = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    if len(raw) * 8 <= _VENDOR_SECTION_AT or raw[0] >> 2 != _VERSION:
        return False
    if not _field(raw, _PURPOSES_AT + purpose - 1, 1):
        return False  # no need to read the vendors: the answer is no either way
    max_vendor = _field(raw, _MAX_VENDOR_ID_AT, 16)
    if _field(raw, _IS_RANGE_AT, 1):
        return _range_consents(raw, max_vendor, vendor_id)
    # A bit field: whole (so not truncated), then the one bit for the vendor.
    return (
        len(raw) * 8 >= _VENDOR_SECTION_AT + max_vendor
        and vendor_id <= max_vendor
        and _field(raw, _VENDOR_SECTION_AT + vendor_id - 1, 1) == 1
    )


def _field(raw: bytes, at: int, width: int) -> int:
    """The unsigned `width`-bit field at bit `at` (big-endian, bit 0 the first byte's highest),
    from just the bytes that hold it. The caller checks that `raw` is long enough."""
    first, stop = at >> 3, (at + width + 7) >> 3
    return int.from_bytes(raw[first:stop], "big") >> (stop * 8 - at - width) & ((1 << width) - 1)


def _range_consents(raw: bytes, max_vendor: int, vendor_id: int) -> bool:
    """Whether the range entries name `vendor_id`; False if any entry is malformed or missing.

    Every entry is read, even after one names the vendor, so that a string cut short is refused.
    At most 4095 entries, and no more than the string can hold: bounded work, linear in the
    string's length. The one loop whose cost grows with the input, so it runs on '0'/'1' text
    (one conversion in C, then a slice and an int() per field) rather than calling _field."""
    size = len(raw) * 8
    if size < _ENTRIES_AT:
        return False
    count = _field(raw, _VENDOR_SECTION_AT, 12)
    if _ENTRIES_AT + 17 * count > size:
        return False  # too short for even single-id entries: truncated
    bits = format(int.from_bytes(raw, "big"), f"0{size}b")
    at = _ENTRIES_AT
    found = False
    for _ in range(count):
        if at + 17 > size:
            return False
        head = int(bits[at : at + 17], 2)  # IsARange, then StartOrOnlyVendorId
        first = last = head & 0xFFFF
        if head >> 16:
            if at + 33 > size:
                return False
            last = int(bits[at + 17 : at + 33], 2)
            at += 33
        else:
            at += 17
        if first == 0 or last < first or last > max_vendor:
            return False
        found = found or first <= vendor_id <= last
    return found
