"""A test-only encoder of IAB TCF v2 TC strings, so tests can build any string they need: valid
ones with chosen purposes and vendors (as a bit field or as ranges), and broken ones (another
version, explicit bad range entries, cut at any bit).

Strings are built as text of '0'/'1' first (core_bits), then encoded as base64url of whole bytes
(encode_bits), so a core cut at any bit is encode_bits(bits[:cut]). The fields not under test get
plausible fixed values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# 2024-01-15 12:00:00 UTC in deciseconds, as the format counts time.
CREATED = 17_053_200_000
# Where the vendor consent section starts (MaxVendorId), in bits from the start of the core.
VENDOR_SECTION_AT = 213


def field(value: int, width: int) -> str:
    assert 0 <= value < 1 << width, (value, width)
    return format(value, f"0{width}b")


def letters(code: str) -> str:
    """A two-letter language or country code: 6 bits per letter, a=0..z=25."""
    return "".join(field(ord(char) - ord("a"), 6) for char in code.lower())


def id_set(ids: Iterable[int], width: int) -> str:
    """A bit field of `width` bits with bit i-1 set for each id i."""
    chosen = set(ids)
    return "".join("1" if index in chosen else "0" for index in range(1, width + 1))


def as_ranges(vendors: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of consecutive ids as (first, last) pairs, ascending."""
    runs: list[tuple[int, int]] = []
    for vendor in sorted(set(vendors)):
        if runs and runs[-1][1] == vendor - 1:
            runs[-1] = (runs[-1][0], vendor)
        else:
            runs.append((vendor, vendor))
    return runs


def range_section_bits(entries: Iterable[tuple[int, int]]) -> int:
    """The length of a range section (NumEntries and the entries), to set against the bit
    field's MaxVendorId bits: an encoder writes the shorter of the two."""
    return 12 + sum(17 if first == last else 33 for first, last in entries)


def vendor_section(
    vendors: Iterable[int],
    *,
    ranges: bool,
    max_vendor_id: int | None = None,
    range_entries: Sequence[tuple[int, int]] | None = None,
) -> str:
    """MaxVendorId, IsRangeEncoding and the bit field or range entries. `range_entries` are
    written as given (start == end as a single-id entry), so they may be invalid on purpose."""
    chosen = set(vendors)
    entries = list(range_entries) if range_entries is not None else as_ranges(chosen)
    highest = max([*chosen, *(last for _, last in entries)], default=0)
    max_id = highest if max_vendor_id is None else max_vendor_id
    if not ranges:
        return field(max_id, 16) + "0" + id_set(chosen, max_id)
    encoded = [
        "0" + field(first, 16) if first == last else "1" + field(first, 16) + field(last, 16)
        for first, last in entries
    ]
    return field(max_id, 16) + "1" + field(len(encoded), 12) + "".join(encoded)


def core_bits(
    *,
    purposes: Iterable[int] = (),
    vendors: Iterable[int] = (),
    ranges: bool = False,
    version: int = 2,
    max_vendor_id: int | None = None,
    range_entries: Sequence[tuple[int, int]] | None = None,
) -> str:
    """The core segment as '0'/'1' text: the header, the vendor consent section, then an empty
    legitimate-interest section and no publisher restrictions."""
    header = "".join(
        [
            field(version, 6),
            field(CREATED, 36),  # Created
            field(CREATED + 600, 36),  # LastUpdated, a minute later
            field(10, 12),  # CmpId
            field(3, 12),  # CmpVersion
            field(1, 6),  # ConsentScreen
            letters("en"),  # ConsentLanguage
            field(300, 12),  # VendorListVersion
            field(4, 6),  # TcfPolicyVersion
            "0",  # IsServiceSpecific
            "0",  # UseNonStandardTexts
            field(0, 12),  # SpecialFeatureOptIns
            id_set(purposes, 24),  # PurposesConsent
            id_set([2, 7, 9, 10], 24),  # PurposesLITransparency
            "0",  # PurposeOneTreatment
            letters("de"),  # PublisherCC
        ]
    )
    assert len(header) == VENDOR_SECTION_AT
    consent = vendor_section(
        vendors, ranges=ranges, max_vendor_id=max_vendor_id, range_entries=range_entries
    )
    legitimate_interest = field(0, 16) + "0"
    publisher_restrictions = field(0, 12)
    return header + consent + legitimate_interest + publisher_restrictions


def encode_bits(bits: str) -> str:
    """base64url without '=' of `bits` zero-padded to whole bytes, as the IAB's encoder does: the
    bytes' bits, zero-padded to whole 6-bit characters."""
    bits += "0" * (-len(bits) % 8)
    bits += "0" * (-len(bits) % 6)
    return "".join(ALPHABET[int(bits[at : at + 6], 2)] for at in range(0, len(bits), 6))


def tc_string(
    *,
    purposes: Iterable[int] = (),
    vendors: Iterable[int] = (),
    ranges: bool = False,
    version: int = 2,
    max_vendor_id: int | None = None,
    range_entries: Sequence[tuple[int, int]] | None = None,
    extra_segments: Sequence[str] = (),
) -> str:
    """A TC string whose core segment consents to `purposes` (1-24) and `vendors`, followed by
    `extra_segments` as given (already encoded)."""
    core = encode_bits(
        core_bits(
            purposes=purposes,
            vendors=vendors,
            ranges=ranges,
            version=version,
            max_vendor_id=max_vendor_id,
            range_entries=range_entries,
        )
    )
    return ".".join([core, *extra_segments])


def consent_section_end(bits: str) -> int:
    """The bit just past the vendor consent section of core `bits`: where a decoder may stop."""
    max_id = int(bits[VENDOR_SECTION_AT : VENDOR_SECTION_AT + 16], 2)
    at = VENDOR_SECTION_AT + 17
    if bits[at - 1] == "0":
        return at + max_id
    count = int(bits[at : at + 12], 2)
    at += 12
    for _ in range(count):
        at += 33 if bits[at] == "1" else 17
    return at
