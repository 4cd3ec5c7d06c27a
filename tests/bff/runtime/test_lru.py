"""The bounded map behind the in-process caches forgets the least recently used entry."""

from __future__ import annotations

import pytest

from bff.runtime.lru import Lru

pytestmark = pytest.mark.unit


def test_the_least_recently_used_entry_goes_first() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # now "b" is the least recently used
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == (1, None, 3, 2)


def test_writing_again_refreshes_and_discard_forgets() -> None:
    lru: Lru[str, int] = Lru(2)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("a", 10)
    lru.put("c", 3)
    assert (lru.get("a"), lru.get("b")) == (10, None)
    lru.discard("a")
    lru.discard("missing")
    assert (lru.get("a"), len(lru)) == (None, 1)


def test_it_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Lru(0)
