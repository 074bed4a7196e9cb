"""The ordinary path: flatten the arguments, look the structure up, compile if new.

1. Flatten the arguments once (`args`, or `[args, kwargs]` when there are keyword
   arguments) and take the tuple of leaf *types*.
2. Look up the `Slot` for this treedef and check its leaf types (a treedef seen with
   other types too has further slots keyed on `(treedef, types)`). The slot knows
   which positions hold arrays (the mask depends only on the types), so the static
   leaves and the arrays are picked out with C-level `itemgetter`s; when there are
   static leaves, a second dict keyed on their values picks the compiled entry.
3. On a miss, make the slot and the entry: a `jax.jit` of a function of two lists of
   arrays (the function's own arrays, and the arguments'), which rebuilds the
   function and its arguments inside the trace and returns `split_output` of the
   result.

The tables are shared by every wrapper of the same function (same static parts, same
donation and jit options), so `filter_jit(f)(x)` in a loop compiles once.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import jax
import jax.tree_util as jtu

from .._caches import BoundedCache
from .._filters import is_array
from .._wrap import constrain, hashable_static, static_leaves
from ._output import split_output


# Functions (with their static parts and jit options) with a dispatch table. Past it
# the oldest table is dropped: its function compiles again on its next call.
TABLES_SIZE = 1024
# Argument structures (treedef and leaf types) per function. Past it the oldest is
# dropped: a call with that structure compiles again.
SLOTS_SIZE = 4096
_TABLES: BoundedCache = BoundedCache(TABLES_SIZE)


def _getter(positions: list[int]) -> Callable[[list], tuple]:
    if len(positions) == 1:
        (i,) = positions
        return lambda leaves: (leaves[i],)
    return itemgetter(*positions)


def _list_getter(positions: list[int]) -> Callable[[list], list]:
    # The array list handed to `jax.jit` is always a list, whichever path built it
    # (a tuple would be another PyTree structure to JAX: a retrace).
    if len(positions) == 0:
        return lambda leaves: []
    if len(positions) == 1:
        (i,) = positions
        return lambda leaves: [leaves[i]]
    get = itemgetter(*positions)
    return lambda leaves: list(get(leaves))


def rebuild(treedef: Any, static: tuple | None, arrays) -> Any:
    """The tree of `treedef` whose leaves are `static`, with `arrays` (in order) in
    place of each `None`; `static=None` means every leaf is an array."""
    if static is None:
        return jtu.tree_unflatten(treedef, arrays)
    it = iter(arrays)
    return jtu.tree_unflatten(treedef, [next(it) if s is None else s for s in static])


class Slot:
    """What is known for one `(treedef, leaf types)`: where the arrays are, the
    compiled entries by static-leaf values, and how often each entry was reached
    here (a guard is made on the second time)."""

    __slots__ = (
        "types",
        "mask",
        "static_get",
        "dyn_get",
        "n_first",
        "entry",
        "by_static",
        "seen",
    )

    def __init__(self, types: tuple, mask: list[bool], n_first: int):
        statics = [i for i, m in enumerate(mask) if not m]
        self.types = types
        self.mask = mask
        self.static_get = _getter(statics) if statics else None
        self.dyn_get = _list_getter([i for i, m in enumerate(mask) if m])
        self.n_first = n_first
        self.entry: Any = None
        self.by_static: dict = {}


class Ordinary:
    """The ordinary path of one `filter_jit` wrapper.

    **Arguments:**

    - `name`, `qualname`: the user's function's names (given to the traced function).
    - `fun_treedef`, `fun_static`: the function as a PyTree, its static leaves.
    - `donate_argnums`, `jitkwargs`: passed to `jax.jit`.
    """

    def __init__(
        self, name: str, qualname: str, fun_treedef, fun_static, donate_argnums, jit
    ):
        self.name, self.qualname = name, qualname
        self.fun_treedef, self.fun_static = fun_treedef, fun_static
        self.donate_argnums = donate_argnums
        # `out_shardings` is applied inside the trace (the compiled function's own
        # outputs are flat lists, not the user's structure).
        self.out_shardings = jit.get("out_shardings")
        self.jitkwargs = {k: v for k, v in jit.items() if k != "out_shardings"}
        key = (fun_treedef, fun_static, donate_argnums, tuple(sorted(jit.items())))
        try:
            table = _TABLES.get(key)
            if table is None:
                table = _TABLES[key] = BoundedCache(SLOTS_SIZE)
        except TypeError:  # unhashable jit options: a private table
            table = BoundedCache(SLOTS_SIZE)
        self.table: BoundedCache = table

    def lookup(self, args: tuple, kwargs: dict, leaves: list, treedef) -> tuple:
        """`(entry, arrays, slot)` for flattened arguments, compiling if needed."""
        types = tuple(map(type, leaves))
        slot = self.table.get(treedef)
        if slot is None or slot.types != types:
            slot = self.table.get((treedef, types))
        if slot is not None:
            if slot.static_get is None:
                if slot.entry is not None:
                    return slot.entry, leaves, slot
            else:
                try:
                    entry = slot.by_static.get(slot.static_get(leaves))
                except TypeError:
                    entry = None
                if entry is not None:
                    return entry, slot.dyn_get(leaves), slot
        return self.resolve(args, kwargs, leaves, treedef, types, slot)

    def resolve(self, args, kwargs, leaves, treedef, types, slot: Slot | None):
        """A miss: make the slot (if `None`) and the compiled entry."""
        if slot is None:
            mask = list(map(is_array, leaves))
            n_first_leaves = jtu.tree_structure(args[0]).num_leaves if args else 0
            slot = Slot(types, mask, sum(mask[:n_first_leaves]))
            # The first type pattern seen for a treedef is keyed by the treedef alone.
            self.table[(treedef, types) if treedef in self.table else treedef] = slot
        has_kwargs = bool(kwargs)
        if slot.static_get is None:
            if slot.entry is None:
                slot.entry = self.make_entry(treedef, None, has_kwargs)
            return slot.entry, leaves, slot
        trees = {"args": args, "kwargs": kwargs}
        statics = hashable_static("filter_jit", slot.static_get(leaves), trees)
        entry = slot.by_static.get(statics)
        if entry is None:
            static = static_leaves(leaves)
            entry = slot.by_static[statics] = self.make_entry(
                treedef, static, has_kwargs
            )
        return entry, slot.dyn_get(leaves), slot

    def make_entry(self, in_treedef, in_static: tuple | None, has_kwargs: bool):
        fun_treedef, fun_static = self.fun_treedef, self.fun_static
        out_shardings = self.out_shardings

        def flat_fun(fun_arrays, *arrays):
            fun = rebuild(fun_treedef, fun_static, fun_arrays)
            dyn = arrays[0] if len(arrays) == 1 else (*arrays[0], *arrays[1])
            tree = rebuild(in_treedef, in_static, dyn)
            args, kwargs = tree if has_kwargs else (tree, {})
            out = fun(*args, **kwargs)
            if out_shardings is not None:
                out = constrain(out, out_shardings)
            return split_output(out)

        flat_fun.__name__ = self.name
        flat_fun.__qualname__ = self.qualname
        return jax.jit(flat_fun, donate_argnums=self.donate_argnums, **self.jitkwargs)
