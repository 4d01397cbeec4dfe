"""A bounded memo for the request path: a dict that forgets everything when it is full.

Clearing costs a few recomputations after a burst of new keys and never memory; an LRU's
bookkeeping would cost every hit, and these memos are read on every request. Lookups are the
dict's own `get`, in C.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(dict[K, V]):
    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max_entries

    def remember(self, key: K, value: V) -> V:
        """Store and return `value`, first forgetting everything if the memo is full."""
        if len(self) >= self.max_entries:
            self.clear()
        self[key] = value
        return value
