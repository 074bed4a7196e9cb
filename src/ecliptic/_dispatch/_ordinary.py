"""The ordinary path: flatten the arguments, look the structure up, compile if new.

1. Flatten the arguments once (`args`, or `[args, kwargs]` when there are keyword
   arguments) and take the tuple of leaf *types*.
2. Look up the `Slot` for this treedef and check its leaf types (a treedef seen with
   other types too has further slots keyed on `(treedef, types)`). The slot knows
   which positions hold arrays (the mask depends only on the types), so the static
   leaves and the arrays are picked out with C-level `itemgetter`s; when there are
   static leaves, a second dict keyed on their values picks the compiled entry.
3. On a miss, make the slot and the entry: a `jax.jit` of a function of the arrays
   as positional arguments (the function's own arrays, then the arguments'), which
   rebuilds the function and its arguments inside the trace and returns
   `split_output` of the result. Arrays passed one per argument reach JAX's C++
   dispatch about 0.1-0.5 us faster than the same arrays in lists, at every count
   measured (7 to 1024 arrays).

The tables are shared by every wrapper of the same function (same static parts, same
donation and jit options), so `filter_jit(f)(x)` in a loop compiles once. A table
holds the plain functions among the static parts weakly (in its key, and in the
traced functions of its entries): once the function is gone (a `lambda` given to a
wrapper that is gone too), its table and compiled code go with it, as `jax.jit`'s
do.
"""

from __future__ import annotations

import types
import weakref
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


class _WeakFun(weakref.ref):
    """A plain function in a table's key: equal to another for the same live
    function, hashed as the function; when the function dies, the table goes
    (`key` is the table's key)."""

    __slots__ = ("key", "hash")

    def __hash__(self) -> int:
        return self.hash

    # Copied as the function it stands for is (`copy` treats functions as atoms).
    def __copy__(self) -> _WeakFun:
        return self

    def __deepcopy__(self, memo: dict) -> _WeakFun:
        return self


def _drop_table(ref: _WeakFun, tables: BoundedCache = _TABLES) -> None:
    # `tables` is bound at definition: module globals may be gone at interpreter exit.
    tables.pop(ref.key, None)


def _weaken(static: tuple) -> tuple:
    """`static` (a tuple of static leaves) with each plain function held weakly."""
    return tuple(_weak_fun(x) if type(x) is types.FunctionType else x for x in static)


def _weak_fun(fun: Any) -> _WeakFun:
    ref = _WeakFun(fun, _drop_table)
    ref.hash, ref.key = hash(fun), None
    return ref


def _strengthen(static: tuple) -> tuple:
    """The static leaves again, from `_weaken`'s tuple (the functions are alive:
    a wrapper that holds them is calling)."""
    return tuple(x() if type(x) is _WeakFun else x for x in static)


def _getter(positions: list[int]) -> Callable[[list], tuple]:
    # A tuple of the leaves at `positions` (the arrays are passed to the compiled
    # function one per argument, so a tuple serves them as well as the statics).
    if not positions:
        return lambda leaves: ()
    if len(positions) == 1:
        (i,) = positions
        return lambda leaves: (leaves[i],)
    return itemgetter(*positions)


def rebuild(treedef: Any, static: tuple | None, arrays) -> Any:
    """The tree of `treedef` whose leaves are `static`, with `arrays` (in order) in
    place of each `None`; `static=None` means every leaf is an array."""
    if static is None:
        return jtu.tree_unflatten(treedef, arrays)
    it = iter(arrays)
    return jtu.tree_unflatten(treedef, [next(it) if s is None else s for s in static])


class Slot:
    """What is known for one `(treedef, leaf types)`: where the arrays are (and how
    many belong to the first argument, for donation) and the compiled entries by
    static-leaf values."""

    __slots__ = (
        "types",
        "mask",
        "static_get",
        "dyn_get",
        "n_first",
        "n_arrays",
        "entry",
        "by_static",
    )

    def __init__(self, types: tuple, mask: list[bool], n_first: int):
        statics = [i for i, m in enumerate(mask) if not m]
        self.types = types
        self.mask = mask
        self.static_get = _getter(statics) if statics else None
        self.dyn_get = _getter([i for i, m in enumerate(mask) if m])
        self.n_first = n_first
        self.n_arrays = sum(mask)
        self.entry: Any = None
        self.by_static: dict = {}


class Ordinary:
    """The ordinary path of one `filter_jit` wrapper.

    **Arguments:**

    - `name`, `qualname`: the user's function's names (given to the traced function).
    - `fun_treedef`, `fun_static`: the function as a PyTree, its static leaves.
    - `n_fun`: how many arrays the function holds (passed first).
    - `donate`: `(first, rest)`: whether the first argument's arrays, and the other
        arrays (the function's and the other arguments'), are donated.
    - `jit`: passed to `jax.jit`.
    """

    def __init__(
        self,
        name: str,
        qualname: str,
        fun_treedef,
        fun_static,
        n_fun: int,
        donate: tuple[bool, bool],
        jit: dict,
    ):
        self.name, self.qualname = name, qualname
        self.fun_treedef, self.fun_static = fun_treedef, fun_static
        self.n_fun = n_fun
        self.donate = donate
        # `out_shardings` is applied inside the trace (the compiled function's own
        # outputs are flat lists, not the user's structure).
        self.out_shardings = jit.get("out_shardings")
        self.jitkwargs = {k: v for k, v in jit.items() if k != "out_shardings"}
        # What the traced functions hold: the function weakly (see the docstring).
        self.weak_static = _weaken(fun_static)
        key = (fun_treedef, self.weak_static, donate, tuple(sorted(jit.items())))
        try:
            table = _TABLES.get(key)
            if table is None:
                table = _TABLES[key] = BoundedCache(SLOTS_SIZE)
                for x in self.weak_static:
                    if type(x) is _WeakFun:
                        x.key = key
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
                slot.entry = self.make_entry(treedef, None, has_kwargs, slot)
            return slot.entry, leaves, slot
        trees = {"args": args, "kwargs": kwargs}
        statics = hashable_static("filter_jit", slot.static_get(leaves), trees)
        entry = slot.by_static.get(statics)
        if entry is None:
            static = static_leaves(leaves)
            entry = slot.by_static[statics] = self.make_entry(
                treedef, static, has_kwargs, slot
            )
        return entry, slot.dyn_get(leaves), slot

    def donate_argnums(self, slot: Slot) -> tuple[int, ...]:
        """The positions donated for a call of `slot`'s structure: the function's
        arrays come first, then the first argument's, then the rest."""
        first, rest = self.donate
        n_fun, n_first = self.n_fun, slot.n_first
        end = n_fun + slot.n_arrays
        fun = range(n_fun) if rest else ()
        head = range(n_fun, n_fun + n_first) if first else ()
        tail = range(n_fun + n_first, end) if rest else ()
        return (*fun, *head, *tail)

    def make_entry(self, in_treedef, in_static: tuple | None, has_kwargs: bool, slot):
        fun_treedef, weak_static = self.fun_treedef, self.weak_static
        out_shardings = self.out_shardings
        n_fun = self.n_fun

        def flat_fun(*flat):
            fun = rebuild(fun_treedef, _strengthen(weak_static), flat[:n_fun])
            tree = rebuild(in_treedef, in_static, flat[n_fun:])
            args, kwargs = tree if has_kwargs else (tree, {})
            out = fun(*args, **kwargs)
            if out_shardings is not None:
                out = constrain(out, out_shardings)
            return split_output(out)

        flat_fun.__name__ = self.name
        flat_fun.__qualname__ = self.qualname
        donate = self.donate_argnums(slot)
        return jax.jit(flat_fun, donate_argnums=donate, **self.jitkwargs)
