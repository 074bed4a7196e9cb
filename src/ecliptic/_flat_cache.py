"""A memo of Module flattens, for `filter_jit`'s dispatch.

Modules are immutable, so flattening the same Module *object* twice gives the same
leaves and treedef, unless a mutable container somewhere inside it (a list or a dict)
was changed in place. This module remembers, per Module object seen at least twice as
a top-level `filter_jit` argument:

- its array leaves (what `jax.jit` is called with),
- a *token*: an object interned on `(treedef, leaf types, non-array leaves)`, so that
  two equal but distinct Modules get the same token, and a dispatch table keyed on
  tokens hashes and compares only by identity;
- the mutable containers inside it, with the identities of what they held, so a call
  can check in C-level code that none of them changed.

Entries are keyed by `id(obj)` and hold a weak reference to the object: a hit needs
`ref() is obj` (a new object at a recycled id never matches), and the entry is dropped
when the object dies (its arrays are not kept alive). An object is only cached when its
whole tree is made of Modules (constructed, not mid-`__init__`), tuples, lists, dicts,
`None` and leaves that are concrete arrays (`jax.Array` that is not a tracer, NumPy
arrays and scalars) or hashable values; anything else (other PyTree node types,
tracers, unhashable leaves) is remembered as "not cacheable" and always takes the
ordinary path. Hashable leaves and static fields are taken to be immutable, as hashing
requires.
"""

from __future__ import annotations

import functools as ft
import weakref
from operator import is_
from typing import Any

import jax
import jax.tree_util as jtu
import numpy as np

from ._caches import register_cache_clear
from ._module import Module
from ._module._flatten import MISSING
from ._module._module import _initialising


__all__ = [
    "CACHE",
    "FAST_ARRAY_TYPES",
    "FlatEntry",
    "note",
    "stale",
    "stale_more",
]

_ARRAY_CLASSES = (jax.Array, np.ndarray, np.generic)
_ArrayImpl = type(jax.numpy.zeros(()))
# Top-level argument types that are a single array leaf (no flatten, no cache).
FAST_ARRAY_TYPES = frozenset({_ArrayImpl, np.ndarray})
_MAX_ENTRIES = 512
_MAX_TOKENS = 4096
_MAX_SEEN = 512
_one_level = jtu.default_registry.flatten_one_level
# `isinstance(type(x), _ModuleMeta)` avoids `ABCMeta.__instancecheck__`, whose
# negative cache for non-Modules is not reliably cheap.
_ModuleMeta = type(Module)


class _Token:
    """Stands for one `(treedef, leaf types, non-array leaves)`; hashed by identity."""

    __slots__ = ("key",)

    def __init__(self, key: tuple):
        self.key = key


def _dead() -> None:
    return None


class FlatEntry:
    """The memo for one object. `ref()` is the object (for a cacheable one; for an
    object that is not cacheable `ref` always returns `None` so every hit test fails,
    and `obj_ref` keeps the real reference). Containers: `cont` is the first list (or
    dict key/value view, which is live) in the tree, or `None` when there is none;
    `n` and `snap` are its length and the items it held (held here, so the identity
    test `all(map(is_, cont, snap))` cannot be fooled by a recycled object). `more`
    holds `(container, length, items)` for any further containers, or `None`."""

    __slots__ = ("ref", "obj_ref", "arrays", "token", "cont", "n", "snap", "more")

    def __init__(self, obj_ref, arrays, token, conts: list):
        self.obj_ref = obj_ref
        self.ref = obj_ref if token is not None else _dead
        self.arrays = arrays
        self.token = token
        checks = [(c, len(c), tuple(c)) for c in conts]
        self.cont, self.n, self.snap = checks[0] if checks else (None, 0, ())
        self.more = tuple(checks[1:]) if len(checks) > 1 else None


# id(obj) -> FlatEntry; id(obj) -> weakref for objects seen once.
CACHE: dict[int, FlatEntry] = {}
_SEEN: dict[int, Any] = {}
_TOKENS: dict[tuple, _Token] = {}


def _clear() -> None:
    CACHE.clear()
    _SEEN.clear()
    _TOKENS.clear()


register_cache_clear(_clear)


def stale(entry: FlatEntry) -> bool:
    """Whether a list or dict inside the entry's object changed since it was cached
    (`filter_jit`'s hot path inlines the test of the first container)."""
    c = entry.cont
    if c is None:
        return False
    if len(c) != entry.n or not all(map(is_, c, entry.snap)):
        return True
    return entry.more is not None and stale_more(entry.more)


def stale_more(more: tuple) -> bool:
    """`stale` for the containers after the first."""
    for c, n, snap in more:
        if len(c) != n or not all(map(is_, c, snap)):
            return True
    return False


def _walk(x: Any, conts: list) -> bool:
    """Whether `x`'s tree is cacheable; appends its lists and dict views to `conts`."""
    if x is None or x is MISSING:
        return True
    t = type(x)
    if t is tuple:
        return all(_walk(y, conts) for y in x)
    if t is list:
        conts.append(x)
        return all(_walk(y, conts) for y in x)
    if t is dict:
        conts.append(x.keys())
        conts.append(x.values())
        return all(_walk(y, conts) for y in x.values())
    if isinstance(t, _ModuleMeta):
        # A Module mid-`__init__` (shadow class or tracked id) may still change.
        if t.__setattr__ is object.__setattr__ or id(x) in _initialising:
            return False
        children, _ = _one_level(x)
        return all(_walk(y, conts) for y in children)
    if isinstance(x, _ARRAY_CLASSES):
        return t in FAST_ARRAY_TYPES or isinstance(x, np.generic)
    if not jtu.treedef_is_leaf(jtu.tree_structure(x)):
        return False  # another PyTree node type: not known to be immutable
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _drop(key: int, wr: Any, cache: dict = CACHE) -> None:
    # `cache` is bound at definition: module globals may be gone at interpreter exit.
    entry = cache.get(key)
    if entry is not None and entry.obj_ref is wr:
        del cache[key]


def _intern(key: tuple) -> _Token:
    token = _TOKENS.get(key)
    if token is None:
        if len(_TOKENS) >= _MAX_TOKENS:
            _TOKENS.clear()
        token = _TOKENS[key] = _Token(key)
    return token


def _fill(obj: Any, wr: Any) -> FlatEntry:
    key = id(obj)
    conts: list = []
    token = None
    arrays: tuple = ()
    try:
        cacheable = _walk(obj, conts)
    except RecursionError:
        cacheable = False
    if cacheable:
        leaves, treedef = jtu.tree_flatten(obj)
        mask = [isinstance(x, _ARRAY_CLASSES) for x in leaves]
        arrays = tuple(x for x, m in zip(leaves, mask, strict=True) if m)
        statics = tuple(x for x, m in zip(leaves, mask, strict=True) if not m)
        try:
            token = _intern((treedef, tuple(map(type, leaves)), statics))
        except TypeError:
            token = None
    if token is None:
        entry = FlatEntry(wr, (), None, [])
    else:
        # A fresh weakref with a callback, so the arrays go when the object does.
        entry = FlatEntry(
            weakref.ref(obj, ft.partial(_drop, key)), arrays, token, conts
        )
    if len(CACHE) >= _MAX_ENTRIES:
        CACHE.pop(next(iter(CACHE)))
    CACHE[key] = entry
    return entry


def note(obj: Any) -> FlatEntry | None:
    """The entry for `obj` if it is memoised: filled on the second sighting, and
    refilled when a list/dict inside it changed. `None` for the first sighting, an
    object that cannot be memoised, or one that is not a Module."""
    if not isinstance(type(obj), _ModuleMeta):
        return None
    key = id(obj)
    entry = CACHE.get(key)
    if entry is not None and entry.obj_ref() is obj:
        if entry.token is None:
            return None
        if not stale(entry):
            return entry
        return _fill(obj, entry.obj_ref)
    seen = _SEEN.get(key)
    if seen is not None and seen() is obj:
        del _SEEN[key]
        return _fill(obj, seen)
    if len(_SEEN) >= _MAX_SEEN:
        _SEEN.clear()
    _SEEN[key] = weakref.ref(obj)
    return None
