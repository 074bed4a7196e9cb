"""`filter_jit` and its dispatch: see `README.md` in this folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._messages import dispatch_info_type_error
from ._guard import (
    FRESH_INLINE_MAX as FRESH_INLINE_MAX,
    GC_PAUSE_MIN_ARRAYS as GC_PAUSE_MIN_ARRAYS,
    make_guard as make_guard,
)
from ._jit import (
    Dispatcher,
    filter_jit as filter_jit,
    GUARD_REARM as GUARD_REARM,
    GUARDS_SIZE as GUARDS_SIZE,
)
from ._memo import lookup as _memo_lookup, MEMO_MIN_NODES as MEMO_MIN_NODES


@dataclass(frozen=True)
class DispatchInfo:
    """What `dispatch_info` reports about one `filter_jit` function.

    - `guard_calls`: calls served by a guard (no flatten).
    - `ordinary_calls`: calls that took the ordinary path (flatten and look up).
    - `guards`: how many argument structures have a guard now.
    - `guard_sizes`: the number of checks each guard makes, oldest first.
    """

    guard_calls: int
    ordinary_calls: int
    guards: int
    guard_sizes: tuple[int, ...]


def dispatch_info(fn: Any) -> DispatchInfo:
    """The test hook of the dispatch package: counters of a `filter_jit` function.

    **Arguments:**

    - `fn`: a function returned by `ecliptic.filter_jit`.

    **Returns:** a [`DispatchInfo`][].
    """
    d = getattr(fn, "_dispatch", None)
    if not isinstance(d, Dispatcher):
        raise dispatch_info_type_error(fn)
    sizes = tuple(g.size for g in d.guards)
    return DispatchInfo(d.hits, d.misses, len(d.guards), sizes)


def is_memoised(obj: Any) -> bool:
    """The test hook of the flatten memo: whether `obj`'s arrays and structure are
    memoised (a guard then checks it with one dict lookup).

    **Arguments:**

    - `obj`: any object (usually a Module passed to or returned by `filter_jit`).

    **Returns:** `True` if the memo holds a valid entry for `obj`.
    """
    return _memo_lookup(obj) is not None


__all__ = [
    "dispatch_info",
    "DispatchInfo",
    "filter_jit",
    "FRESH_INLINE_MAX",
    "GC_PAUSE_MIN_ARRAYS",
    "GUARD_REARM",
    "GUARDS_SIZE",
    "is_memoised",
    "make_guard",
    "MEMO_MIN_NODES",
]
