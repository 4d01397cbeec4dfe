"""The request path's bounded memo."""

from __future__ import annotations

from tracker.memo import BoundedMemo


def test_remember_stores_and_returns_the_value() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(3)
    assert memo.remember("a", 1) == 1
    assert memo.get("a") == 1
    assert memo.get("b") is None


def test_a_full_memo_forgets_everything_before_storing() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(3)
    for index, key in enumerate("abc"):
        memo.remember(key, index)
    assert len(memo) == 3
    memo.remember("d", 3)
    assert dict(memo) == {"d": 3}


def test_rewriting_a_key_when_full_still_stays_within_the_bound() -> None:
    memo: BoundedMemo[str, int] = BoundedMemo(2)
    for round_number in range(10):
        for key in ("a", "b", "c"):
            memo.remember(key, round_number)
            assert len(memo) <= 2
