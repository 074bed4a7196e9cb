"""`clear_caches`: one switch for every cache that ecliptic keeps.

A module that caches something calls `register_cache_clear(fn)` at import time, with a
function that empties its cache. `clear_caches()` calls them all.
"""

from __future__ import annotations

from collections.abc import Callable


_cache_clears: list[Callable[[], object]] = []


def register_cache_clear(clear: Callable[[], object]) -> Callable[[], object]:
    """Registers `clear` (a function of no arguments that empties one cache) to be
    called by [`ecliptic.clear_caches`][]. Returns `clear`, so it can decorate."""
    if not callable(clear):
        raise TypeError(
            "register_cache_clear expected a callable of no arguments, but got "
            f"{type(clear).__name__} {clear!r}. Pass e.g. `my_cache.clear`."
        )
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
    for clear in _cache_clears:
        clear()
