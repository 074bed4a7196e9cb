"""`store_dce` / `inspect_dce`: find out which arrays the compiler removed as dead
code."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import jax.tree_util as jtu
import wadler_lindig as wl
from jaxtyping import PyTree

from .._filters import is_array
from .._messages import inspect_dce_inside_jit_error, store_dce_outside_jit_error


# name -> {tag: (alive arrays {index: (shape, dtype)}, treedef, non-array leaves
# with None where the arrays are)}
_store: dict[Hashable, dict[object, tuple[dict, Any, list]]] = {}


class _Text:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _inside_jit() -> bool:
    return isinstance(jnp.asarray(1) + 1, jax.core.Tracer)


def _recorder(alive: dict, i: int):
    def record(x):
        alive[i] = (x.shape, x.dtype.name)
        return x

    return record


def store_dce(x: PyTree, name: Hashable = None) -> PyTree:
    """Identity inside a jitted function that records, when the compiled program runs,
    which of `x`'s arrays survived dead-code elimination. Read the record with
    [`ecliptic.debug.inspect_dce`][].

    **Arguments:**

    - `x`: any PyTree; its arrays are checked, other leaves ignored.
    - `name`: optional hashable label for this call site.

    **Returns:** `x`, unchanged.
    """
    if not _inside_jit():
        raise store_dce_outside_jit_error()
    leaves, treedef = jtu.tree_flatten(x)
    alive: dict[int, tuple] = {}
    statics = [None if is_array(leaf) else leaf for leaf in leaves]
    _store.setdefault(name, {})[object()] = (alive, treedef, statics)
    out = [
        jax.pure_callback(_recorder(alive, i), leaf, leaf, vmap_method="expand_dims")
        if is_array(leaf)
        else leaf
        for i, leaf in enumerate(leaves)
    ]
    return jtu.tree_unflatten(treedef, out)


def inspect_dce(name: Hashable = None) -> None:
    """Prints, for every `store_dce(..., name=name)` call, each array as its dtype and
    shape (e.g. `f32[3]`) if it was computed, or `<DCE'd>` if the compiler removed
    it.

    **Arguments:**

    - `name`: the label passed to `store_dce` (default `None`).

    **Returns:** `None`; the report is printed.
    """
    if _inside_jit():
        raise inspect_dce_inside_jit_error()
    entries = _store.get(name, {})
    plural = "" if len(entries) == 1 else "s"
    print(f"Found {len(entries)} call{plural} to `ecliptic.debug.store_dce`.")
    for k, (alive, treedef, statics) in enumerate(entries.values()):
        shown = []
        for i, leaf in enumerate(statics):
            if leaf is not None:
                shown.append(leaf)
            elif i in alive:
                shape, dtype = alive[i]
                shown.append(_Text(wl.array_summary(shape, dtype, kind=None).text))
            else:
                shown.append(_Text("<DCE'd>"))
        print(f"Entry {k}:")
        print(wl.pformat(jtu.tree_unflatten(treedef, shown)))
