"""Header values as valid Unicode.

aiohttp decodes header bytes as UTF-8 with `surrogateescape`, so bytes that are not UTF-8 arrive
as lone surrogates, which protobuf, JSON encoders and `str.encode` refuse. Such text becomes
U+FFFD here, once, before anything stores or hashes it. ASCII, nearly every real header, is
recognised in constant time and returned as it is.
"""

from __future__ import annotations


def valid_text(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
