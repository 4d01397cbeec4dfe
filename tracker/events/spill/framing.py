"""How one event is framed in a segment file of the on-disk log, and how a chunk is read back.

    record = MAGIC (2) | length (u32 LE) | crc32 (u32 LE) | body (length bytes)
    body   = events (u32 LE) | key length (u16 LE) | partition key (ASCII) | data

The CRC covers the length field and the body, so a flipped bit anywhere but in the magic is
caught, and a damaged length can never send the reader off to a wrong record boundary unnoticed.
After damage the reader looks for the next magic whose record checks out: only the damaged
region is lost, and it is counted once. zlib's CRC-32 runs in C at several GB/s; CRC-32C would
need a dependency for the same protection against torn writes and flipped bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from tracker.events.entry import Entry

MAGIC = b"\xad\x1e"
_HEADER = struct.Struct("<2sII")
_BODY_HEAD = struct.Struct("<IH")  # a u8 could not say 256
HEADER_SIZE = _HEADER.size
MAX_KEY = 256  # Kinesis partition keys are at most 256 characters
MAX_DATA = 1024 * 1024  # Kinesis records are at most 1 MiB
MAX_BODY = _BODY_HEAD.size + MAX_KEY + MAX_DATA
MAX_RECORD = HEADER_SIZE + MAX_BODY
_MIN_BODY = _BODY_HEAD.size + 1


def encode(entry: Entry) -> bytes:
    """One framed record; the entry's key must be ASCII and within MAX_KEY (message ids are)."""
    key = entry.partition_key.encode("ascii")
    body = _BODY_HEAD.pack(entry.events, len(key)) + key + entry.data
    length = len(body).to_bytes(4, "little")
    return MAGIC + length + zlib.crc32(body, zlib.crc32(length)).to_bytes(4, "little") + body


@dataclass(slots=True)
class Decoded:
    entries: list[Entry] = field(default_factory=list)
    consumed: int = 0  # bytes of the chunk fully dealt with; the rest must be read again
    corrupt: int = 0  # damaged regions skipped in this chunk


class Decoder:
    """Reads records out of consecutive chunks of one segment file.

    It carries one bit between chunks: whether it is inside a damaged region, so that a region
    spanning a chunk boundary is counted once.
    """

    def __init__(self) -> None:
        self._damaged = False

    def decode(self, chunk: bytes, *, final: bool, max_records: int) -> Decoded:
        """Records from the start of `chunk`, at most `max_records`. `final` says the chunk ends
        where the segment ends for good: a record cut short there is damage, not "read more"."""
        out = Decoded()
        view = memoryview(chunk)
        pos, size = 0, len(chunk)
        while len(out.entries) < max_records and pos + HEADER_SIZE <= size:
            magic, length, crc = _HEADER.unpack_from(chunk, pos)
            end = pos + HEADER_SIZE + length
            if magic == MAGIC and _MIN_BODY <= length <= MAX_BODY:
                if end > size and not final:
                    break  # the record continues in the next chunk
                if end <= size and _crc(view, pos, end) == crc:
                    entry = _entry(view[pos + HEADER_SIZE : end])
                    if entry is not None:
                        out.entries.append(entry)
                        self._damaged = False
                        pos = end
                        continue
            pos = self._skip_damage(chunk, pos, out, final)
        if final and len(out.entries) < max_records and pos < size:
            self._note_damage(out)  # a few bytes too short for a header: a torn tail
            pos = size
        out.consumed = pos
        return out

    def _skip_damage(self, chunk: bytes, pos: int, out: Decoded, final: bool) -> int:
        """Where the next candidate record starts after damage at `pos`."""
        self._note_damage(out)
        following = chunk.find(MAGIC, pos + 1)
        if following >= 0:
            return following
        # Keep the last byte: it may be the first half of the next magic.
        return len(chunk) if final else max(pos + 1, len(chunk) - 1)

    def _note_damage(self, out: Decoded) -> None:
        if not self._damaged:
            out.corrupt += 1
            self._damaged = True


def _crc(view: memoryview, start: int, end: int) -> int:
    """The CRC of the record at start: its length field, then its body."""
    return zlib.crc32(view[start + HEADER_SIZE : end], zlib.crc32(view[start + 2 : start + 6]))


def _entry(body: memoryview) -> Entry | None:
    events, key_length = _BODY_HEAD.unpack_from(body)
    data_start = _BODY_HEAD.size + key_length
    if events < 1 or key_length < 1 or data_start > len(body):
        return None
    key = bytes(body[_BODY_HEAD.size : data_start])
    if not key.isascii():
        return None
    return Entry(key.decode("ascii"), bytes(body[data_start:]), events)
