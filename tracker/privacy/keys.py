"""Keyed hashes that stand in for identifiers. Shared by the tracker (which derives them) and the
consumers (which look a person up by them for export and erasure).

HMAC-SHA256 cut to 128 bits, as hex: without the key nobody can test a guessed id against a
stored one, and 128 bits make collisions between people negligible.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_HEX_CHARS = 32
# Longer uid values are refused, not hashed: no advertiser's id is this long, and a bound keeps
# the memo of recent ids small.
MAX_USER_ID = 256
MIN_SECRET_BYTES = 16


def user_key(secret: bytes, user_id: str) -> str:
    """The stored stand-in for an advertiser's user id (`uid`) under USER_ID_KEY."""
    return hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]


def client_digest(secret: bytes, scope: str, address: str, user_agent: str) -> str:
    """One client (address and user agent) within `scope`, under a day's secret: keyed BLAKE2b,
    a MAC by design (no HMAC construction needed) and a third of HMAC-SHA256's cost, which a
    request from a new client pays. Behind `visitor_id` (scope: the customer) and the duplicate
    click key (scope: the program)."""
    message = f"{scope}\n{address}\n{user_agent}".encode()
    return hashlib.blake2b(message, key=secret, digest_size=KEY_HEX_CHARS // 2).hexdigest()


def is_user_id(text: str) -> bool:
    return 0 < len(text) <= MAX_USER_ID
