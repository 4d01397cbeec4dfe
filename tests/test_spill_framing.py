"""The framing of the on-disk event log: records, checksums, resyncing after damage."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tracker.events.entry import Entry
from tracker.events.spill.framing import (
    HEADER_SIZE,
    MAGIC,
    MAX_BODY,
    MAX_DATA,
    MAX_KEY,
    MAX_RECORD,
    Decoder,
    encode,
)

ALL = 10**9  # "no limit" for max_records

keys = st.text(st.characters(codec="ascii"), min_size=1, max_size=MAX_KEY)
entries = st.builds(
    Entry,
    keys,
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=2**32 - 1),
    on_disk=st.none(),  # what the log reads back is never also in memory
)


def whole(data: bytes) -> tuple[list[Entry], int]:
    """The entries and damaged regions of a complete segment, decoded in one go."""
    decoded = Decoder().decode(data, final=True, max_records=ALL)
    assert decoded.consumed == len(data)
    return decoded.entries, decoded.corrupt


def chunked(data: bytes, cuts: list[int], max_records: int = ALL) -> tuple[list[Entry], int]:
    """Read `data` as the log reads a growing or large file: a chunk ends at the next cut point,
    and one that yields nothing is extended to the following cut (a record longer than it)."""
    decoder = Decoder()
    found: list[Entry] = []
    corrupt = 0
    ends = sorted({c for c in cuts if 0 < c < len(data)} | {len(data)})
    pos, end_index = 0, 0
    for _ in range(4 * len(data) + len(ends) + 4):  # every step makes progress or widens
        if pos == len(data):
            return found, corrupt
        while ends[end_index] <= pos:
            end_index += 1
        end = ends[end_index]
        final = end == len(data)
        decoded = decoder.decode(data[pos:end], final=final, max_records=max_records)
        assert 0 <= decoded.consumed <= end - pos
        assert len(decoded.entries) <= max_records
        found.extend(decoded.entries)
        corrupt += decoded.corrupt
        if decoded.consumed == 0:
            assert not final, "a final, non-empty chunk must be consumed"
            assert not decoded.entries
            end_index += 1
        pos += decoded.consumed
    raise AssertionError("the reader did not terminate")


def segment(records: list[Entry]) -> tuple[bytes, list[int]]:
    """A segment file of `records` and the offset where each record starts."""
    framed = [encode(e) for e in records]
    starts = [sum(len(f) for f in framed[:i]) for i in range(len(framed))]
    return b"".join(framed), starts


def sample_records(count: int, seed: int = 7) -> list[Entry]:
    rng = random.Random(seed)
    return [
        Entry(f"key-{i:04d}", rng.randbytes(rng.randrange(1, 400)), rng.randrange(1, 5))
        for i in range(count)
    ]


def flip(data: bytes, index: int, mask: int = 0xFF) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


# --- round trips -------------------------------------------------------------------------------


@given(st.lists(entries, max_size=30))
def test_round_trip(records: list[Entry]) -> None:
    data, _ = segment(records)
    assert whole(data) == (records, 0)


def test_round_trip_at_the_kinesis_limits() -> None:
    records = [
        Entry("k" * MAX_KEY, random.Random(1).randbytes(MAX_DATA), 500),
        Entry("x", b"", 1),
        Entry("".join(chr(c) for c in range(1, 128)) * 2 + "z" * 2, b"\xad\x1e" * 10, 2**32 - 1),
    ]
    data, _ = segment(records)
    assert len(encode(records[0])) == MAX_RECORD
    assert whole(data) == (records, 0)
    # The log reads at most MAX_RECORD bytes at a time: the largest record fits in one chunk.
    assert chunked(data, list(range(0, len(data), MAX_RECORD))) == (records, 0)
    assert chunked(data, list(range(0, len(data), 4096)), max_records=1) == (records, 0)


def test_a_record_over_the_limit_is_damage_not_a_crash() -> None:
    data = encode(Entry("k" * MAX_KEY, b"d" * (MAX_DATA + 1)))
    assert len(data) - HEADER_SIZE > MAX_BODY
    assert whole(data) == ([], 1)


@given(st.lists(entries, max_size=20), st.lists(st.integers(0, 10_000)), st.integers(1, 5))
def test_chunks_decode_like_the_whole_file(
    records: list[Entry], cuts: list[int], max_records: int
) -> None:
    data, _ = segment(records)
    assert chunked(data, cuts, max_records) == (records, 0)


# --- arbitrary bytes ---------------------------------------------------------------------------


def check_progress(chunk: bytes, max_records: int) -> None:
    for final in (True, False):
        decoded = Decoder().decode(chunk, final=final, max_records=max_records)
        assert 0 <= decoded.consumed <= len(chunk)
        assert len(decoded.entries) <= max_records
        assert decoded.corrupt <= 1 + len(chunk) // 2  # regions are separated by records
        if final and chunk and len(decoded.entries) < max_records:
            assert decoded.consumed == len(chunk)
        if final and chunk:
            assert decoded.consumed > 0


@given(st.binary(max_size=2000), st.integers(1, 50))
def test_decoding_arbitrary_bytes_never_raises_and_progresses(chunk: bytes, limit: int) -> None:
    check_progress(chunk, limit)


@given(st.binary(max_size=200), st.integers(0, 2000), st.integers(1, 4))
def test_bytes_behind_a_magic_never_raise(tail: bytes, length: int, limit: int) -> None:
    """Damage that still starts with the magic: lengths in and out of range, any body."""
    chunk = MAGIC + struct.pack("<II", length, 0) + tail
    check_progress(chunk, limit)


@st.composite
def damaged_logs(draw: st.DrawFn) -> tuple[bytes, list[Entry]]:
    """A valid segment, then bytes flipped, cut out, inserted or truncated."""
    records = draw(st.lists(entries, min_size=1, max_size=12))
    data, _ = segment(records)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        index = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data = flip(data, index, draw(st.integers(1, 255)))
        elif kind == "insert":
            data = data[:index] + draw(st.binary(min_size=1, max_size=40)) + data[index:]
        elif kind == "delete":
            data = data[:index] + data[index + draw(st.integers(1, 40)) :]
        else:
            data = data[:index]
    return data, records


@given(damaged_logs(), st.lists(st.integers(0, 5000)), st.integers(1, 6))
def test_damaged_logs_decode_in_chunks_like_the_whole_file(
    damaged: tuple[bytes, list[Entry]], cuts: list[int], max_records: int
) -> None:
    data, records = damaged
    check_progress(data, max_records)
    found, corrupt = whole(data)
    assert chunked(data, cuts, max_records) == (found, corrupt)
    # Damage loses records; it never invents one (CRC-32 catches a few flipped bytes).
    assert all(entry in records for entry in found)


# --- damage: what is lost and how it is counted -------------------------------------------------

N = 12


@given(st.integers(0, N - 1), st.data())
@hypothesis_settings(max_examples=200)
def test_one_flipped_byte_loses_exactly_its_record(k: int, data: st.DataObject) -> None:
    records = sample_records(N)
    log, starts = segment(records)
    end = starts[k + 1] if k + 1 < N else len(log)
    index = data.draw(st.integers(starts[k], end - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="mask")
    damaged = flip(log, index, mask)
    expected = (records[:k] + records[k + 1 :], 1)
    assert whole(damaged) == expected
    assert chunked(damaged, [index - 3, index + 1, starts[k] + 5]) == expected


def test_two_far_apart_damaged_records_are_two_regions() -> None:
    records = sample_records(N)
    log, starts = segment(records)
    damaged = flip(flip(log, starts[2] + HEADER_SIZE + 3), starts[9] + 4)  # a body, a length
    expected = ([r for i, r in enumerate(records) if i not in (2, 9)], 2)
    assert whole(damaged) == expected
    assert chunked(damaged, list(range(0, len(damaged), 97))) == expected


def test_two_neighbouring_damaged_records_are_one_region() -> None:
    records = sample_records(N)
    log, starts = segment(records)
    damaged = flip(flip(log, starts[4] + 20), starts[5] + 20)
    assert whole(damaged) == (records[:4] + records[6:], 1)


@pytest.mark.parametrize("keep", [1, 2, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3, -1])
def test_a_truncated_last_record_loses_only_it(keep: int) -> None:
    records = sample_records(N)
    log, starts = segment(records)
    cut = starts[-1] + keep if keep > 0 else len(log) + keep
    expected = (records[:-1], 1)
    assert whole(log[:cut]) == expected
    assert chunked(log[:cut], [starts[-1], starts[-1] + 1]) == expected


@pytest.mark.parametrize("k", [0, 5, N - 1])
@pytest.mark.parametrize("byte", [0, 1])
def test_a_flipped_magic(k: int, byte: int) -> None:
    records = sample_records(N)
    log, starts = segment(records)
    assert whole(flip(log, starts[k] + byte)) == (records[:k] + records[k + 1 :], 1)


def lengths(body: int, following: int) -> list[int]:
    """Damaged length fields: too short, too long, past the end, onto the next boundary."""
    wrong = [0, 1, body - 1, body + 1, body + following, MAX_BODY + 1, 2**32 - 1]
    return [length for length in wrong if length != body]


@pytest.mark.parametrize("k", [0, 6, N - 1])
def test_a_damaged_length_field(k: int) -> None:
    records = sample_records(N)
    log, starts = segment(records)
    body = len(encode(records[k])) - HEADER_SIZE
    following = len(encode(records[k + 1])) if k + 1 < N else 0
    for length in lengths(body, following):
        at = starts[k] + len(MAGIC)
        damaged = log[:at] + struct.pack("<I", length) + log[at + 4 :]
        expected = (records[:k] + records[k + 1 :], 1)
        assert whole(damaged) == expected, length
        assert chunked(damaged, list(range(0, len(damaged), 150))) == expected, length


def test_damage_spanning_chunks_is_counted_once() -> None:
    records = sample_records(N)
    log, starts = segment(records)
    garbage = bytes(random.Random(3).randrange(256) for _ in range(3000)).replace(MAGIC, b"..")
    damaged = log[: starts[6]] + garbage + log[starts[6] :]
    expected = (records, 1)
    assert whole(damaged) == expected
    assert chunked(damaged, list(range(starts[6], starts[6] + 3000, 64))) == expected
