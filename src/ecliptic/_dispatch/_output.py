"""Outputs: what leaves the compiled function, and how the user's output is rebuilt.

Only arrays ever reach JAX as outputs: JAX's C++ dispatch path is disabled for
functions whose outputs hold non-array leaves (say, a model with an activation
function in it). An output made of arrays in tuples, lists, dicts and `None` leaves
`jax.jit` as it is. Any other output (non-array leaves, or a Module anywhere in it)
comes back as a `Packed`: a PyTree node whose children are the output arrays and
whose auxiliary data is a `Rebuild` (the treedef and the non-array leaves, kept by
JAX per compiled signature). Users never see a `Packed`, so `type(out) is Packed`
tells the two kinds apart.

`Rebuild` unflattens with `jax.tree_util` on its first call. From its second call on
it runs a generated straight-line builder for its structure: each Module is made
with `object.__new__` and its fields set in place (no `__init__`, as the Module's own
unflatten), and each outermost Module of the output is memoised
(`_memo.record`) with its arrays, so that a training step's model and optimiser state
need no flatten when they come back in.

An output of `SETATTR_MIN_MODULES` Modules or more has the fields set with
`object.__setattr__`, which keeps them in the instance's inline values: no dict object
is made until something reads `__dict__`. That halves the objects the garbage
collector tracks per returned Module, and with them how often a training step of a
large model wakes a full collection (measured with `bench_scaling.py`: the 300-layer
step went from 1.9-2.3x to 1.3-1.4x the floor; filling `__dict__` is faster per field
but the collections it causes cost more).
"""

from __future__ import annotations

from gc import disable as gc_disable, enable as gc_enable, isenabled as gc_enabled
from typing import Any

import jax.tree_util as jtu
import numpy as np
from jax._src.array import ArrayImpl

from .._filters import is_array
from .._messages import (
    builder_array_types_message,
    builder_module_fields_message,
    builder_node_type_message,
    builder_too_long_message,
)
from .._module import Module
from ._codegen import Namespace
from ._memo import MEMO_MIN_NODES, record, token_for


# The array types a guard or a memo entry accepts as array leaves (a jax.Array that
# is not a tracer, and NumPy arrays). Named by class, not found by making an array:
# importing ecliptic must not initialise a backend (so `jax_num_cpu_devices` and
# `jax.distributed.initialize()` still work after `import ecliptic`).
ARRAY_TYPES = frozenset({ArrayImpl, np.ndarray})
# A generated builder longer than this many lines is not made (its compile time
# would pass the time of many calls); the output is unflattened by `jax.tree_util`
# instead, about twice as slow per Module.
MAX_BUILDER_LINES = 100_000
# An output with at least this many Modules has their fields set with
# `object.__setattr__` (no dict object: half the objects the garbage collector tracks);
# a smaller one fills each `__dict__`, about twice as fast per field, with too few
# objects to matter to the collector.
SETATTR_MIN_MODULES = 64


class Packed(tuple):
    """`(rebuild, arrays)`: what a compiled function returns when the user's output
    is not just arrays in built-in containers."""

    __slots__ = ()


jtu.register_pytree_node(
    Packed,
    lambda p: (p[1], p[0]),
    lambda rebuild, arrays: Packed((rebuild, arrays)),
)


def _modules(treedef: Any):
    """The Module nodes of a treedef."""
    data = treedef.node_data()
    if data is None:
        return
    if isinstance(data[0], type) and issubclass(data[0], Module):
        yield data[0]
    for child in treedef.children():
        yield from _modules(child)


def split_output(out: Any) -> Any:
    """At trace time: `out` itself if it is arrays in built-in containers, else a
    `Packed` of its arrays and its `Rebuild`."""
    leaves, treedef = jtu.tree_flatten(out)
    if all(map(is_array, leaves)) and next(_modules(treedef), None) is None:
        return out
    static = tuple(None if is_array(x) else x for x in leaves)
    arrays = [x for x in leaves if is_array(x)]
    return Packed((Rebuild(treedef, static), arrays))


def finish(out: Any) -> Any:
    """The user's output from what the compiled function returned."""
    if type(out) is Packed:
        return out[0](out[1])
    return out


class Rebuild:
    """Rebuilds one output structure from its arrays (see the module docstring)."""

    __slots__ = ("treedef", "static", "build")

    def __init__(self, treedef: Any, static: tuple):
        self.treedef = treedef
        self.static = static
        self.build: Any = None

    def __call__(self, arrays: list) -> Any:
        build = self.build
        if build is not None:
            # Every object the builder makes is part of the result, alive when it
            # returns: a collection woken in the middle would only scan and promote
            # them. So the collector is paused while it runs (hundreds of Modules for
            # a large model's training step; measured with bench_scaling.py at depth
            # 300: 1.1-1.4x -> 0.9-1.1x the floor, noisy).
            if not gc_enabled():
                return build(arrays)
            gc_disable()
            try:
                return build(arrays)
            finally:
                gc_enable()
        # First call: the generic unflatten; the builder is made on the second.
        self.build = self.generic
        out = self.generic(arrays)
        try:
            self.build = make_builder(self.treedef, self.static, arrays)
        except (_Unsupported, RecursionError, SyntaxError, MemoryError):
            pass
        return out

    def generic(self, arrays: list) -> Any:
        it = iter(arrays)
        leaves = [next(it) if s is None else s for s in self.static]
        return jtu.tree_unflatten(self.treedef, leaves)


class _Unsupported(Exception):
    """An output structure the builder does not write; `jax.tree_util` rebuilds it."""


class _Writer:
    def __init__(self, static: tuple, arrays: list, setattr: bool):
        self.setattr = setattr
        self.lines: list[str] = []
        self.ns = Namespace(
            {"new": object.__new__, "osa": object.__setattr__, "record": record}
        )
        self.const, self.var = self.ns.const, self.ns.var
        self.static = static
        self.arrays = arrays
        self.leaf = 0  # position in `static`
        self.array = 0  # position in `arrays`

    def node(self, treedef: Any, conts: list | None) -> str:
        """Writes the statements that build one node; returns its expression."""
        data = treedef.node_data()
        if data is None:  # a leaf
            s = self.static[self.leaf]
            self.leaf += 1
            if s is None:
                self.array += 1
                return f"a[{self.array - 1}]"
            return self.const(s)
        typ, aux = data
        subs = treedef.children()
        if typ is type(None):
            return "None"
        if typ is tuple:
            return "(" + "".join(f"{self.node(t, conts)}, " for t in subs) + ")"
        if typ is list or typ is dict:
            items = [self.node(t, conts) for t in subs]
            var = self.var("c")
            if typ is list:
                self.lines.append(f"{var} = [{', '.join(items)}]")
                if conts is not None:
                    conts.append(var)
            else:
                pairs = ", ".join(
                    f"{self.const(k)}: {v}" for k, v in zip(aux, items, strict=True)
                )
                self.lines.append(f"{var} = {{{pairs}}}")
                if conts is not None:
                    conts += [f"{var}.keys()", f"{var}.values()"]
            return var
        if issubclass(typ, tuple) and hasattr(typ, "_fields") and aux is None:
            items = [self.node(t, conts) for t in subs]
            return f"{self.const(typ)}({', '.join(items)})"
        if issubclass(typ, Module):
            return self.module(treedef, typ, aux, subs, conts)
        raise _Unsupported(builder_node_type_message(typ))

    def module(self, treedef, typ, aux, subs, conts: list | None) -> str:
        info = typ._ecliptic_info
        if type(aux) is not tuple or len(aux) != len(info.static):
            raise _Unsupported(builder_module_fields_message())
        outermost = conts is None
        inner: list = [] if outermost else conts  # type: ignore[assignment]
        start_leaf, start = self.leaf, self.array
        children = [self.node(t, inner) for t in subs]
        var = self.var()
        values = children + [self.const(v) for v in aux]
        names = info.dynamic + info.static
        self.lines.append(f"{var} = new({self.const(typ)})")
        if self.setattr:
            self.lines += [f"osa({var}, {n!r}, {v})" for n, v in zip(names, values)]
        elif names:
            self.lines.append(f"d = {var}.__dict__")
            self.lines += [f"d[{n!r}] = {v}" for n, v in zip(names, values)]
        if outermost and treedef.num_nodes >= MEMO_MIN_NODES:
            self.memoise(var, treedef, start_leaf, start, inner)
        return var

    def memoise(self, var: str, treedef, start_leaf: int, start: int, conts) -> None:
        leaves = []
        it = iter(self.arrays[start : self.array])
        for s in self.static[start_leaf : self.leaf]:
            leaves.append(next(it) if s is None else s)
        token = token_for(treedef, leaves)
        if token is None:
            return
        c = f"({', '.join(conts)},)" if conts else "None"
        self.lines.append(
            f"record({var}, a[{start}:{self.array}], {self.const(token)}, {c})"
        )


def make_builder(treedef: Any, static: tuple, arrays: list):
    """A generated function `build(arrays)` equal to `Rebuild.generic` for this
    structure, which also memoises the outermost Modules it makes.

    **Raises:** `_Unsupported` for a structure it does not write (another PyTree node
    type, a Module with unset fields, or more than `MAX_BUILDER_LINES` lines).
    """
    if not all(type(x) in ARRAY_TYPES for x in arrays):
        raise _Unsupported(builder_array_types_message())
    modules = sum(1 for _ in _modules(treedef))
    w = _Writer(static, arrays, setattr=modules >= SETATTR_MIN_MODULES)
    expr = w.node(treedef, None)
    if len(w.lines) > MAX_BUILDER_LINES:
        raise _Unsupported(builder_too_long_message())
    body = "\n".join(f"    {line}" for line in w.lines)
    src = f"def build(a):\n{body}\n    return {expr}\n"
    build = w.ns.define(src, "<ecliptic filter_jit output>", "build")
    build.source = src
    return build
