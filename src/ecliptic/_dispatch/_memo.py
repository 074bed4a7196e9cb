"""The flatten memo: what is known about Module objects `filter_jit` has seen or built.

Modules are immutable, so a Module *object* flattens the same way every time, unless
a mutable container somewhere inside it (a list or a dict) was changed in place. The
memo maps `id(obj)` to an `Entry` holding:

- a weak reference to the object (a hit needs `entry.ref() is obj`, so a new object at
  a recycled id never matches, and the entry goes when the object dies; the object's
  arrays are not kept alive by anything but the entry, which dies with it);
- its array leaves in flatten order (what `jax.jit` is called with);
- its *token*: an object interned on `(treedef, leaf types, non-array leaves)`, so
  that equal structures share one token and a guard compares tokens by identity;
- the lists and dicts inside it with the identities of what they held (`conts`,
  `snaps`), so that a hit can check, in C-level code, that none of them changed.

Only Modules of at least `MEMO_MIN_NODES` PyTree nodes are memoised; smaller ones
are cheaper to walk.

Entries are written in two ways:

1. `record(obj, arrays, token, conts)` by the output builder (`_output.py`), for each
   outermost Module of a `filter_jit` output: the model and optimiser state a
   training step returns are known without a flatten when they come back in.
2. `record` by a guard (`_guard.py`) that had to walk a Module argument: the next
   call with the same object (inference) is a hit.

The memo key (`id`) and the staleness test live here; guards inline the hit test
`entry[REF]() is obj and entry[TOKEN] is T` and, when the object holds containers,
the staleness test too (`_guard._fresh`; past `FRESH_INLINE_MAX` containers they
call `fresh(entry)`). Hashable leaves and static fields are taken to be immutable, as
hashing requires.
"""

from __future__ import annotations

import weakref
from operator import is_
from typing import Any

from .._caches import BoundedCache
from .._filters import is_array


# Objects memoised at once. Past it the oldest entry is dropped: its object, passed
# again, is walked by its guard once (linear in its leaves) and memoised anew.
MEMO_SIZE = 4096
# Distinct structures (treedef, leaf types, statics) with a token. Past it the oldest
# token is dropped: a guard holding it misses the memo and walks its argument.
TOKENS_SIZE = 4096

# An outermost Module of fewer PyTree nodes (itself, its containers and Modules, its
# leaves) than this is not memoised: its guard walks it on every call, which costs
# less than making, checking and dropping an entry (about as much as walking a Module
# of two layers; a `Linear` has 3 nodes). Measured with the training step of
# `benchmarks/bench_scaling.py` at depth 3 (12 nodes): memoised, the guard's Python
# work per step falls from about 1,370 to 600 bytecodes.
MEMO_MIN_NODES = 8

MEMO: BoundedCache = BoundedCache(MEMO_SIZE)
_TOKENS: BoundedCache = BoundedCache(TOKENS_SIZE)


class Token:
    """Stands for one `(treedef, leaf types, non-array leaves)`; compared by
    identity."""

    __slots__ = ("key", "__weakref__")

    def __init__(self, key: tuple):
        self.key = key


def token_for(treedef: Any, leaves: list) -> Token | None:
    """The interned token of a flattened object, or `None` if a leaf is unhashable.

    **Arguments:**

    - `treedef`, `leaves`: `jax.tree_util.tree_flatten(obj)`.

    **Returns:** the same `Token` for every object of equal treedef, leaf types and
    non-array leaves.
    """
    statics = tuple(x for x in leaves if not is_array(x))
    key = (treedef, tuple(map(type, leaves)), statics)
    try:
        token = _TOKENS.get(key)
    except TypeError:
        return None
    if token is None:
        token = _TOKENS[key] = Token(key)
    return token


class _Ref(weakref.ref):
    """A weak reference that knows its memo key, so one callback serves every entry."""

    __slots__ = ("key",)


def _drop(ref: _Ref, memo: BoundedCache = MEMO) -> None:
    # `memo` is bound at definition: module globals may be gone at interpreter exit.
    entry = memo.get(ref.key)
    if entry is not None and entry[0] is ref:
        del memo[ref.key]


# An entry is a tuple `(ref, arrays, token, conts, snaps)`: `arrays` a list, `conts`
# the lists and dict views inside the object and `snaps` the items each held, or
# both `None` when it holds no list or dict. (A tuple: made and read in C.)
REF, ARRAYS, TOKEN, CONTS, SNAPS = range(5)


def fresh(entry: tuple) -> bool:
    """Whether no list or dict inside the entry's object changed since it was
    recorded (identity of every item, and the lengths)."""
    for cont, snap in zip(entry[CONTS], entry[SNAPS]):
        if len(cont) != len(snap) or not all(map(is_, cont, snap)):
            return False
    return True


def record(obj: Any, arrays: list, token: Token, conts: tuple | None) -> None:
    """Memoises `obj`, a Module whose array leaves are `arrays` and whose structure is
    `token`; `conts` are the lists and dict views (`d.keys()`, `d.values()`) inside it,
    or `None` when there are none."""
    key = id(obj)
    ref = _Ref(obj, _drop)
    ref.key = key
    snaps = None if conts is None else tuple(map(tuple, conts))
    MEMO[key] = (ref, arrays, token, conts, snaps)


def lookup(obj: Any) -> tuple | None:
    """The entry for `obj` if one is recorded and still valid, else `None` (the
    check a guard inlines)."""
    entry = MEMO.get(id(obj))
    if entry is None or entry[REF]() is not obj:
        return None
    if entry[CONTS] is not None and not fresh(entry):
        return None
    return entry
