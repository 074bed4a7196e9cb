"""Guards: generated functions that flatten arguments of one known structure.

`filter_jit`'s ordinary path flattens the arguments with `jax.tree_util`, hashes the
treedef and looks it up. When the same structure comes back call after call (a
training loop passes a new model and optimiser state of the same shape every step),
`make_guard` writes, once, a straight-line Python function for that structure:

    def guard(args):
        a0, a1 = args
        if type(a0) is not MLP: return None
        d0 = a0.__dict__
        ...
        return [leaf, leaf, ...]

It checks every node's exact type, the length of every tuple/list/dict, the keys of
every dict, every Module's static fields and every non-array leaf (identity or `==`,
as a treedef comparison and a dict lookup would), and the exact type of every array
leaf; it returns the array leaves in flatten order, or `None` as soon as anything
differs. Passing the guard therefore implies that `jax.tree_util.tree_flatten(args)`
would give the same treedef, the same leaf types and equal static leaves, so the
same compiled function applies.

Only structures made of Modules, tuples, lists, namedtuples, dicts, `None`, arrays of
the types in `_flat_cache.FAST_ARRAY_TYPES` and hashable static leaves get a guard;
anything else (other PyTree node types, tracers, Modules with unset fields) makes
`make_guard` return `None`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.tree_util as jtu

from ._filters import is_array
from ._flat_cache import FAST_ARRAY_TYPES
from ._module import Module


__all__ = ["make_guard"]

_one_level = jtu.default_registry.flatten_one_level


class _Unsupported(Exception):
    """A node or leaf the guard cannot check; no guard is made."""


class _Writer:
    """Accumulates the guard's source lines, its constants and its array leaves."""

    def __init__(self, leaves: list):
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.arrays: list[str] = []
        self.leaves = leaves
        self.cursor = 0
        self.count = 0

    def var(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def const(self, value: Any) -> str:
        # One name per distinct object (types recur at every node of a class).
        name = self.names.get(id(value))
        if name is None:
            name = self.names[id(value)] = f"k{len(self.consts)}"
            self.consts[name] = value
        return name

    def fail_unless(self, condition: str) -> None:
        self.lines.append(f"    if not ({condition}): return None")

    def same_value(self, var: str, value: Any) -> None:
        # What a tuple comparison does per item: identity first, then `==`.
        k = self.const(value)
        self.fail_unless(f"{var} is {k} or {var} == {k}")

    def leaf(self, var: str, obj: Any) -> None:
        expected = self.leaves[self.cursor]
        self.cursor += 1
        if obj is not expected:
            raise _Unsupported("leaf order")
        t = type(obj)
        self.fail_unless(f"type({var}) is {self.const(t)}")
        if t in FAST_ARRAY_TYPES:
            self.arrays.append(var)
        elif is_array(obj):
            raise _Unsupported("tracer or NumPy scalar leaf")
        else:
            hash(obj)  # unhashable static leaves take the ordinary path (TypeError)
            self.same_value(var, obj)

    def children(self, var: str, count: int) -> list[str]:
        names = [self.var() for _ in range(count)]
        if count:
            self.lines.append(f"    {', '.join(names)}, = {var}")
        return names

    def node(self, var: str, obj: Any, treedef: Any) -> None:
        if jtu.treedef_is_leaf(treedef) and treedef.num_leaves == 1:
            self.leaf(var, obj)
            return
        typ, aux = treedef.node_data()
        subtrees = treedef.children()
        if typ is not type(obj):
            raise _Unsupported("type mismatch")
        if obj is None:
            self.fail_unless(f"{var} is None")
            return
        if typ is tuple or typ is list:
            self.sequence(var, obj, typ, subtrees)
        elif issubclass(typ, tuple) and hasattr(typ, "_fields"):
            one = _one_level(obj)
            if one is None or one[1] is not typ:
                raise _Unsupported("tuple subclass registered as a custom node")
            self.sequence(var, obj, typ, subtrees)
        elif typ is dict:
            self.fail_unless(f"type({var}) is dict and len({var}) == {len(aux)}")
            for key, sub in zip(aux, subtrees, strict=True):
                child = self.var()
                self.lines.append(f"    {child} = {var}[{self.const(key)}]")
                self.node(child, obj[key], sub)
        elif issubclass(typ, Module):
            self.module(var, obj, typ, aux, subtrees)
        else:
            raise _Unsupported(f"PyTree node type {typ!r}")

    def sequence(self, var: str, obj: Any, typ: type, subtrees: list) -> None:
        k = self.const(typ)
        self.fail_unless(f"type({var}) is {k} and len({var}) == {len(obj)}")
        for child, x, sub in zip(
            self.children(var, len(obj)), obj, subtrees, strict=True
        ):
            self.node(child, x, sub)

    def module(self, var: str, obj: Any, typ: Any, aux: Any, subtrees: list) -> None:
        info = typ._ecliptic_info
        if type(aux) is not tuple or len(aux) != len(info.static):
            raise _Unsupported("Module with unset fields or wrapper attributes")
        d = obj.__dict__
        self.fail_unless(f"type({var}) is {self.const(typ)}")
        dvar = self.var()
        self.lines.append(f"    {dvar} = {var}.__dict__")
        if isinstance(getattr(typ, "__wrapped__", None), property):
            # Mirrors the flatten of classes that may carry wrapper attributes.
            self.fail_unless(f"len({dvar}) == {len(info.dynamic) + len(info.static)}")
        for name, value in zip(info.static, aux, strict=True):
            svar = self.var()
            self.lines.append(f"    {svar} = {dvar}[{name!r}]")
            self.same_value(svar, value)
        for name, sub in zip(info.dynamic, subtrees, strict=True):
            child = self.var()
            self.lines.append(f"    {child} = {dvar}[{name!r}]")
            self.node(child, d[name], sub)


def make_guard(
    args: tuple, leaves: list, treedef: Any
) -> Callable[[tuple], list | None] | None:
    """A guard for calls whose positional arguments look like `args`.

    **Arguments:**

    - `args`: the positional arguments of a call (a tuple).
    - `leaves`, `treedef`: `jax.tree_util.tree_flatten(args)`.

    **Returns:** a function of an argument tuple that returns the list of its array
    leaves (in flatten order) when the arguments have this treedef, these leaf types
    and equal static leaves, and `None` otherwise; or `None` when this structure
    cannot be guarded.
    """
    writer = _Writer(leaves)
    try:
        if type(args) is not tuple or treedef.node_data() != (tuple, None):
            raise _Unsupported("arguments must be a tuple")
        # The root needs no check: unpacking it fails on a wrong argument count,
        # and the caller always passes a tuple.
        names = writer.children("args", len(args))
        for name, x, sub in zip(names, args, treedef.children(), strict=True):
            writer.node(name, x, sub)
    except (_Unsupported, TypeError, ValueError):
        return None
    if writer.cursor != len(leaves):
        return None
    src = (
        "def guard(args):\n"
        "    try:\n"
        + "\n".join("    " + line for line in writer.lines)
        + f"\n        return [{', '.join(writer.arrays)}]\n"
        "    except Exception:\n"
        "        return None\n"
    )
    namespace = dict(writer.consts)
    exec(compile(src, "<ecliptic filter_jit guard>", "exec"), namespace)
    guard = namespace["guard"]
    guard.source = src  # for debugging
    guard.checks = len(writer.lines)  # its length, a measure of its cost
    return guard
