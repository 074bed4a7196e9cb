"""Caches: one bounded cache type, and `clear_caches`, one switch for all of them.

Every cache ecliptic keeps is a `BoundedCache`: a `dict` that holds at most `maxsize`
entries (storing a new key when full drops the oldest entry) and that registers itself
with `clear_caches` when it is made. Lookups are plain `dict` lookups (C speed); only
`cache[key] = value` is bounded, so code that fills a cache writes through `[]`.

State that is not a dict (say, the guard a `filter_jit` wrapper holds) registers a
function that empties it with `register_cache_clear(fn)`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ._messages import cache_clear_type_error, cache_maxsize_error


_cache_clears: list[Callable[[], object]] = []
# Every live BoundedCache (by id): per-function caches die with their function.
_live: weakref.WeakValueDictionary[int, BoundedCache] = weakref.WeakValueDictionary()


class BoundedCache(dict):
    """A `dict` of at most `maxsize` entries, emptied by [`ecliptic.clear_caches`][].

    **Arguments:**

    - `maxsize`: the most entries it holds. Storing a new key when it is full drops
        the oldest stored entry first. Each use names its bound as a constant with a
        comment saying what a miss costs when the bound is hit.

    Reads (`cache.get(key)`, `cache[key]`) are the `dict`'s own. Only `cache[key] =
    value` is bounded: fill it through `[]`, not `setdefault` or `update`.
    """

    __slots__ = ("maxsize", "__weakref__")

    def __init__(self, maxsize: int):
        super().__init__()
        if maxsize < 1:
            raise cache_maxsize_error(maxsize)
        self.maxsize = maxsize
        _live[id(self)] = self

    def __setitem__(self, key: Any, value: Any) -> None:
        if len(self) >= self.maxsize and key not in self:
            del self[next(iter(self))]
        dict.__setitem__(self, key, value)

    def __repr__(self) -> str:
        return f"BoundedCache(maxsize={self.maxsize}, {len(self)} entries)"


def cached_entries() -> int:
    """The test hook of the caches: how many entries all live `BoundedCache`s hold
    (0 right after [`ecliptic.clear_caches`][]).

    **Returns:** the number of entries.
    """
    return sum(len(cache) for cache in list(_live.values()))


def register_cache_clear(clear: Callable[[], object]) -> Callable[[], object]:
    """Registers `clear` (a function of no arguments that empties one cache) to be
    called by [`ecliptic.clear_caches`][]. Returns `clear`, so it can decorate."""
    if not callable(clear):
        raise cache_clear_type_error(clear)
    _cache_clears.append(clear)
    return clear


def clear_caches() -> None:
    """Clears ecliptic's internal caches (compiled `filter_jit` dispatch tables and
    any other cache registered by ecliptic's modules).

    Call it before `jax.clear_caches()` to release everything that holds on to
    compiled code.

    **Arguments:** none.

    **Returns:** `None`.
    """
    for cache in list(_live.values()):
        cache.clear()
    for clear in _cache_clears:
        clear()
