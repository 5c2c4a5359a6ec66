"""sidecar.memo: the one bounded memory behind every per-path cache of the hot path."""

from __future__ import annotations

from sidecar.memo import PATH_MAX, Memo


def test_a_memo_keeps_what_it_is_given_and_returns_it() -> None:
    memo: Memo[str, int] = Memo(size=3)
    assert memo.keep("/api/v4/spot/orders", 1, "/api/v4/spot/orders") == 1
    assert memo.get("/api/v4/spot/orders") == 1


def test_a_full_memo_is_emptied_before_it_keeps_more() -> None:
    memo: Memo[int, int] = Memo(size=3)
    for i in range(3):
        memo.keep(i, i)
    memo.keep(3, 3)
    assert dict(memo) == {3: 3}


def test_a_key_holding_a_path_longer_than_the_bound_is_returned_but_not_kept() -> None:
    memo: Memo[tuple[str, str], str] = Memo()
    long_path = "/api/v4/spot/" + "a" * PATH_MAX
    assert memo.keep(("GET", long_path), "spot", long_path) == "spot"
    assert not memo
    assert memo.keep(("GET", long_path[:PATH_MAX]), "spot", long_path[:PATH_MAX]) == "spot"
    assert len(memo) == 1
