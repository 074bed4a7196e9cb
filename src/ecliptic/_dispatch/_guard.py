"""Guards: generated functions that flatten arguments of one known structure.

The ordinary path flattens the arguments with `jax.tree_util`, hashes the treedef and
looks it up. When a structure comes back call after call (a training loop passes a
new model and optimiser state of the same shape every step), `make_guard` writes,
once, straight-line Python for that structure:

    def guard(args):
        a0, a1, a2 = args
        e = memo_get(id(a0))                # a large Module argument: the memo
        if e is not None and e[0]() is a0 and e[2] is T0 and (...fresh...):
            r = e[1]
        else:
            r = walk0(a0)                   # else its generated walk
            if r is None: return None
        if not (type(a1) is tuple and len(a1) == 2): return None
        ...
        return [*r, ...]

A *walk* checks every node's exact type, the length of every tuple/list/dict, the
keys of every dict, every Module's static fields and every non-array leaf (identity,
then `==`, as a treedef comparison and a dict lookup would), and the exact type of
every array; it returns the array leaves in flatten order, or `None` at the first
difference, and memoises the Module it walked (`_memo.record`). Passing a guard
implies that `jax.tree_util.tree_flatten(args)` would give the same treedef, leaf
types and equal static leaves, so the same compiled entry applies.

The outermost Modules of each argument of at least `MEMO_MIN_NODES` nodes are
looked up in the memo first: a model that a training step returned (the output builder
memoised it) or a model passed again (memoised by its walk) costs one dict lookup,
whatever its size. Smaller ones are checked inline. Both kinds, when below
`CELL_MAX_NODES`, are first compared with a `_Cell` that remembers (weakly) the last
object seen at that position: the same small object passed again (inference) costs
one weak-reference call. Any other PyTree node
type is checked through JAX's one-level flatten (its aux data compared with `==`);
Modules below such a node are not memoised. Tracers, NumPy scalars and Modules whose
`__init__` is running get no guard.
"""

from __future__ import annotations

import gc
import operator
import os
import weakref
from collections.abc import Callable
from typing import Any

import jax.tree_util as jtu

from .._filters import is_array
from .._messages import (
    guard_arguments_message,
    guard_array_leaf_message,
    guard_initialising_message,
    guard_leaf_count_error,
    guard_leaf_order_message,
    guard_type_mismatch_message,
    unguardable_error,
)
from .._module import is_initialising, Module
from .._pytree import flatten_one_level
from .._tracebacks import hide_internal_frames
from ._codegen import Namespace
from ._memo import fresh, MEMO, MEMO_MIN_NODES, record, token_for
from ._output import ARRAY_TYPES, Packed


class _Unsupported(Exception):
    """A node or leaf a guard cannot check; no guard is made."""


class _Code:
    """The source lines, constants and array variables of one generated function."""

    def __init__(self, ns: Namespace, fail: str = "None"):
        self.lines: list[str] = []
        self.arrays: list[str] = []
        self.conts: list[str] = []
        self.memo_safe = True
        self.fail = fail  # what the function returns on a failed check
        self.const, self.var = ns.const, ns.var

    def fail_unless(self, condition: str) -> None:
        self.lines.append(f"if not ({condition}): return {self.fail}")

    def same_value(self, var: str, value: Any) -> None:
        # What a tuple comparison does per item: identity first, then `==`.
        k = self.const(value)
        self.fail_unless(f"{var} is {k} or {var} == {k}")

    def unpack(self, var: str, count: int) -> list[str]:
        names = [self.var() for _ in range(count)]
        if count:
            self.lines.append(f"{', '.join(names)}, = {var}")
        return names


class _Builder:
    """Writes the guard of one argument tuple: the top function and one walk per
    outermost Module."""

    def __init__(self, leaves: list):
        self.ns = Namespace(
            {
                "memo_get": MEMO.get,
                "fresh": fresh,
                "is_": operator.is_,
                "record": record,
                "initialising": is_initialising,
                "one_level": flatten_one_level,
            }
        )
        self.leaves = leaves
        self.cursor = 0
        self.walks: list[str] = []
        self.lines_total = 0

    def code(self, fail: str = "None") -> _Code:
        return _Code(self.ns, fail)

    def leaf(self, c: _Code, var: str, obj: Any) -> None:
        expected = self.leaves[self.cursor]
        self.cursor += 1
        if obj is not expected:
            raise _Unsupported(guard_leaf_order_message())
        t = type(obj)
        c.fail_unless(f"type({var}) is {c.const(t)}")
        if t in ARRAY_TYPES:
            c.arrays.append(var)
        elif is_array(obj):
            raise _Unsupported(guard_array_leaf_message())
        else:
            hash(obj)  # unhashable static leaves take the ordinary path (TypeError)
            c.same_value(var, obj)

    def node(self, c: _Code, var: str, obj: Any, treedef: Any, top: bool) -> None:
        if jtu.treedef_is_leaf(treedef) and treedef.num_leaves == 1:
            self.leaf(c, var, obj)
            return
        typ, aux = treedef.node_data()
        if typ is not type(obj):
            raise _Unsupported(guard_type_mismatch_message())
        subtrees = treedef.children()
        if obj is None:
            c.fail_unless(f"{var} is None")
        elif isinstance(obj, Module):
            if is_initialising(obj):
                raise _Unsupported(guard_initialising_message())
            if top:
                self.memo_or_walk(c, var, obj, treedef)
            else:
                self.module(c, var, obj, typ, aux, subtrees)
        elif typ is tuple or typ is list:
            self.sequence(c, var, obj, typ, subtrees, top)
        elif issubclass(typ, tuple) and hasattr(typ, "_fields"):
            one = flatten_one_level(obj)
            if one is None or one[1] is not typ:
                self.generic(c, var, obj, typ, aux, subtrees, immutable=False)
            else:
                self.sequence(c, var, obj, typ, subtrees, top)
        elif typ is dict:
            c.fail_unless(f"type({var}) is dict and len({var}) == {len(aux)}")
            c.conts += [f"{var}.keys()", f"{var}.values()"]
            for key, sub in zip(aux, subtrees, strict=True):
                child = c.var()
                c.lines.append(f"{child} = {var}[{c.const(key)}]")
                self.node(c, child, obj[key], sub, top)
        else:
            self.generic(c, var, obj, typ, aux, subtrees, immutable=False)

    def sequence(self, c, var, obj, typ, subtrees, top) -> None:
        c.fail_unless(f"type({var}) is {c.const(typ)} and len({var}) == {len(obj)}")
        if typ is list:
            c.conts.append(var)
        for child, x, sub in zip(c.unpack(var, len(obj)), obj, subtrees, strict=True):
            self.node(c, child, x, sub, top)

    def generic(self, c, var, obj, typ, aux, subtrees, immutable: bool) -> None:
        """Any registered node: JAX's one-level flatten, aux data compared by `==`.
        A node type other than a Module is not known to be immutable: the Module
        around it is then not memoised."""
        if not immutable:
            c.memo_safe = False
        children, aux_var = c.var(), c.var()
        c.fail_unless(f"type({var}) is {c.const(typ)}")
        c.lines.append(f"{children}, {aux_var} = one_level({var})")
        c.same_value(aux_var, aux)
        c.fail_unless(f"len({children}) == {len(subtrees)}")
        kids = flatten_one_level(obj)[0]
        for child, x, sub in zip(
            c.unpack(children, len(subtrees)), kids, subtrees, strict=True
        ):
            self.node(c, child, x, sub, False)

    def module(self, c, var, obj, typ, aux, subtrees) -> None:
        info = typ._ecliptic_info
        wrapped = isinstance(getattr(typ, "__wrapped__", None), property)
        if wrapped or type(aux) is not tuple or len(aux) != len(info.static):
            # Unset fields or wrapper attributes: the Module's own flatten decides.
            self.generic(c, var, obj, typ, aux, subtrees, immutable=True)
            return
        c.fail_unless(f"type({var}) is {c.const(typ)}")
        d = c.var()
        c.lines.append(f"{d} = {var}.__dict__")
        for name, value in zip(info.static, aux, strict=True):
            s = c.var()
            c.lines.append(f"{s} = {d}[{name!r}]")
            c.same_value(s, value)
        for name, sub in zip(info.dynamic, subtrees, strict=True):
            child = c.var()
            c.lines.append(f"{child} = {d}[{name!r}]")
            self.node(c, child, obj.__dict__[name], sub, False)

    def small(self, c: _Code, var: str, obj: Any, typ, aux, subtrees) -> None:
        """A small outermost Module: its checks inline, skipped when it is the same
        object as last time (if it holds no list or dict and no node of unknown
        mutability)."""
        inner = self.code(c.fail)
        self.module(inner, var, obj, typ, aux, subtrees)
        if not inner.memo_safe or inner.conts:
            c.lines += inner.lines
            c.arrays += inner.arrays
            return
        r = c.var()
        lines = [*inner.lines, f"{r} = [{', '.join(inner.arrays)}]"]
        self.behind_cell(c, var, r, lines)
        c.arrays.append(f"*{r}")

    def behind_cell(self, c: _Code, var: str, r: str, lines: list[str]) -> None:
        """`lines` (which set `r` to the arrays of `var`), skipped when `var` is the
        object a cell remembers; the cell remembers what they found."""
        k = c.const(_Cell())
        c.lines += [f"if {k}.ref() is {var}:", f"    {r} = {k}.arrays", "else:"]
        c.lines += [f"    {line}" for line in lines]
        c.lines.append(f"    {k}.remember({var}, {r})")

    def memo_or_walk(self, c: _Code, var: str, obj: Any, treedef: Any) -> None:
        """An outermost Module: inline checks when it is small, else a memo hit or
        its generated walk."""
        typ, aux = treedef.node_data()
        if treedef.num_nodes < MEMO_MIN_NODES:
            self.small(c, var, obj, typ, aux, treedef.children())
            return
        walk = self.code()
        start = self.cursor
        self.module(walk, "a", obj, typ, aux, treedef.children())
        leaves = self.leaves[start : self.cursor]
        token = token_for(treedef, leaves) if walk.memo_safe else None
        name = f"walk{len(self.walks)}"
        tail = [f"r = [{', '.join(walk.arrays)}]"]
        if token is not None:
            t = walk.const(token)
            conts = f"({', '.join(walk.conts)},)" if walk.conts else "None"
            tail.append(f"if not initialising(a): record(a, r, {t}, {conts})")
        self.walks.append(_function(name, "a", walk.lines + tail + ["return r"]))
        self.lines_total += len(walk.lines)
        e, r = c.var(), c.var()
        if token is None:
            c.lines += [f"{r} = {name}({var})", f"if {r} is None: return {c.fail}"]
        else:
            t = c.const(token)
            lines = [
                f"{e} = memo_get(id({var}))",
                f"if {e} is not None and {e}[0]() is {var} and {e}[2] is {t} "
                f"and {_fresh(e, len(walk.conts))}:",
                f"    {r} = {e}[1]",
                "else:",
                f"    {r} = {name}({var})",
                f"    if {r} is None: return {c.fail}",
            ]
            if treedef.num_nodes < CELL_MAX_NODES and not walk.conts:
                # The cell remembers what a walk found (a memo hit is a model
                # that a step returned: a new object each call).
                k = c.const(_Cell())
                c.lines += [f"if {k}.ref() is {var}:", f"    {r} = {k}.arrays", "else:"]
                c.lines += [f"    {line}" for line in lines]
                c.lines.append(f"        {k}.remember({var}, {r})")
            else:
                c.lines += lines
        c.arrays.append(f"*{r}")


# A memoised Module holding at most this many lists and dicts is checked for changes
# to them inline (in C, no Python frame); one holding more calls `_memo.fresh`.
FRESH_INLINE_MAX = 8


def _fresh(e: str, n: int) -> str:
    """The source that checks that a memo entry named `e`, of an object holding `n`
    lists and dict views, is still valid (`_memo.fresh`): each holds as many items
    as its snapshot, each the same object. Inline, an entry of another count fails
    it (its object is then walked)."""
    if n == 0:
        return f"{e}[3] is None"
    if n > FRESH_INLINE_MAX:
        return f"({e}[3] is None or fresh({e}))"
    checks = [f"len({e}[3]) == {n}"]
    for i in range(n):
        c, s = f"{e}[3][{i}]", f"{e}[4][{i}]"
        checks.append(f"len({c}) == len({s}) and all(map(is_, {c}, {s}))")
    return f"({e}[3] is None or ({' and '.join(checks)}))"


# Memoised Modules of fewer nodes than this are also compared with a cell first
# (one weak-reference call, cheaper than the memo's lookup): a small model passed
# again, as in inference, is then as cheap as the smallest ones.
CELL_MAX_NODES = 48
CELL_TRIES = 8


class _Cell:
    """The last object a guard saw at one argument position, and its arrays: passed
    again (inference), a small immutable Module costs one weak-reference call instead
    of its checks. The reference is weak, and the arrays go when the object does."""

    __slots__ = ("ref", "arrays", "misses", "_forget", "__weakref__")

    def __init__(self):
        self.ref: Any = _dead
        self.arrays: list | None = None
        self.misses = 0
        self._forget = self.forget

    def remember(self, obj: Any, arrays: list) -> None:
        # After `CELL_TRIES` misses in a row (a training loop: a new object each
        # call) it remembers only every 64th call, so a loop does not pay for weak
        # references it never uses, and a later inference loop is still caught.
        misses = self.misses = self.misses + 1
        if misses > CELL_TRIES and misses & 63:
            return
        if not is_initialising(obj):
            self.ref = weakref.ref(obj, self._forget)
            self.arrays = arrays

    def forget(self, ref: Any) -> None:
        if self.ref is ref:
            self.ref, self.arrays = _dead, None


def _dead() -> None:
    return None


def _function(name: str, arg: str, body: list[str], fail: str = "None") -> str:
    lines = "\n".join("        " + line for line in body)
    return (
        f"def {name}({arg}):\n    try:\n{lines}\n"
        f"    except Exception:\n        return {fail}\n"
    )


class _Miss:
    """The type of `MISS`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISS"


# What a guard's `run` returns when the arguments have another structure (any other
# value, `None` included, is the output of the compiled function).
MISS = _Miss()
# The file name of generated code: inside this package, so that tracebacks drop its
# frames as they drop ecliptic's (`_tracebacks.hide_internal_frames`).
_FILENAME = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "<generated guard>"
)


def _never(fun_arrays: Any, args: tuple) -> Any:
    """The `run` of a dispatcher's `none` guard: no structure passes it."""
    return MISS


class Guard:
    """A generated check for one argument structure, and where it leads.

    - `run(fun_arrays, args)`: checks `args`; when they have this structure, notes
        the hit on its dispatcher, calls the compiled function with `fun_arrays`
        and the arrays of `args` as positional arguments and returns the user's
        output; else returns `MISS`.
    - `fast(*args, **kwargs)`: the whole call of the wrapper that `filter_jit`
        returned, its function's arrays baked in: `run`'s checks and call, the
        dispatcher's `slow` path when they fail, and the error handling of
        `filter_jit`'s boundary. The dispatcher's `fast` is the `fast` of the guard
        it predicts, and that wrapper's `__call__` is that.
    - `entry`: the compiled entry this structure calls.
    - `next`: the guard that passed on the call after this one passed (the hot
        path tries it first, so that two structures called in turn never fail a
        guard).
    - `size`: the number of checks it makes (its cost, for tests and tuning).
    - `source`: its source code, for debugging.
    """

    __slots__ = ("run", "fast", "entry", "next", "size", "source")

    def __init__(self, entry: Any = None, size: int = 0):
        self.run: Callable = _never
        self.fast: Callable | None = None
        self.entry = entry
        self.next = self
        self.size = size
        self.source = ""


def _indent(lines: list[str], depth: int) -> list[str]:
    return [" " * depth + line for line in lines]


# A call whose arguments hold at least this many arrays (the function's own included)
# runs with the garbage collector paused, from the compiled call to the end of
# rebuilding its output. The collector counts allocations less deallocations of
# tracked objects and wakes a young collection past 700; paused, it still counts, but
# wakes nothing. In a training loop the step's outputs (JAX's arrays and the rebuilt
# Modules) replace the last step's, whose deaths by reference count take the count
# back down before anything wakes it: the collector never examines them, where
# unpaused it examined them in about one young collection per 700 arrays, then in a
# middle one that promoted the live ones to the oldest generation, and that promotion
# is what sets off full collections, which examine every object in the process.
# Measured (`bench_scaling.py`'s 1000-layer step, 80 steps in a process holding
# 400,000 other objects): 586 young, 54 middle and 3 full collections before, none
# after; the `jax.jit` floor has 585, 53 and 2. Pausing and resuming costs about
# 0.1 us: 1% of the smallest calls (hence the bound), nothing next to a call of this
# many arrays (30 us or more). Interleaved with the floor in a process holding
# 400,000 other objects, pausing every call moved the training step of
# `bench_scaling.py` by +0.01x at depth 3 (19 arrays), -0.01x at depths 10 and 30
# (61 and 181 arrays) and -0.03 to -0.05x at depth 100. Only the guarded path
# pauses; the ordinary path pauses while the output is rebuilt (`_output.Rebuild`).
GC_PAUSE_MIN_ARRAYS = 32
# What a guard does once its checks pass: tell its dispatcher (`advance` only when
# the prediction changes: a loop of one structure writes nothing), then call.
_HIT = [
    "if G_SELF is not G_OWNER.last:",
    "    G_OWNER.advance(G_SELF)",
    "G_OWNER.hits += 1",
    "out = G_CALL({arrays})",
    "if type(out) is G_PACKED:",
    "    return out[0](out[1])",
    "return out",
]
# The same for a structure of at least `GC_PAUSE_MIN_ARRAYS` arrays: the compiled call
# and the rebuilding of its output run with the garbage collector paused (resumed
# only if it was running).
_HIT_PAUSED = [
    *_HIT[:3],
    "gc_was_on = G_GC_ENABLED()",
    "G_GC_DISABLE()",
    "try:",
    *_indent(_HIT[3:], 4),
    "finally:",
    "    if gc_was_on:",
    "        G_GC_ENABLE()",
]
# The boundary of a whole call (see `_jit._call_unadopted`): `fail` raises the
# error to show (a failed `error_if` translated), then ecliptic's frames go.
_BOUNDARY = [
    "except Exception as e:",
    "    try:",
    "        G_OWNER.fail(e)",
    "    except Exception as t:",
    "        G_HIDE(t)",
    "        raise",
]


def fast_entry(owner: Any, fun_arrays: list) -> Callable:
    """The `fast` of a dispatcher's `none` guard: every call takes `owner.slow`
    (with `fun_arrays`, the function's arrays), inside the boundary."""
    body = ["def fast(*args, **kwargs):", "    try:"]
    body += ["        return G_OWNER.slow(G_FA, args, kwargs)", *_indent(_BOUNDARY, 4)]
    ns = Namespace(
        {"G_OWNER": owner, "G_HIDE": hide_internal_frames, "G_FA": fun_arrays}
    )
    return ns.define("\n".join(body) + "\n", _FILENAME, "fast")


class GuardCode:
    """The checks of one argument structure, before they become a function
    (`build_guard`)."""

    def __init__(self, builder: _Builder, top: _Code):
        self.builder, self.top = builder, top
        self.size = len(top.lines) + builder.lines_total

    def check(self) -> tuple[Callable, str]:
        """`(check, source)`: `check(args)` returns the arrays of `args` (a list),
        or `None` when they have another structure."""
        body = [*self.top.lines, f"return [{', '.join(self.top.arrays)}]"]
        src = "\n".join(self.builder.walks) + _function("guard", "args", body)
        ns = self.builder.ns
        return ns.define(src, _FILENAME, "guard", {"MISS": None}), src

    def runner(
        self, guard: Guard, owner: Any, call: Callable, fun_arrays: list
    ) -> None:
        """Sets `guard.run`, `guard.fast` and `guard.source`. `owner` is the
        dispatcher: `last`, `hits`, `advance(guard)`, `slow(fun_arrays, args,
        kwargs)` and `fail(e)`; `call(*fun_arrays, *arrays)` runs the compiled
        function. `run` takes the function's arrays as its first argument; `fast`
        calls with `fun_arrays` (the arrays of the wrapper that `filter_jit`
        returned: see `_jit.Dispatcher.advance`)."""
        n_fun = len(fun_arrays)
        n_arrays = n_fun + sum(type(x) in ARRAY_TYPES for x in self.builder.leaves)
        template = _HIT_PAUSED if n_arrays >= GC_PAUSE_MIN_ARRAYS else _HIT

        def hit(fa: str) -> list[str]:
            arrays = ", ".join(([] if n_fun == 0 else [f"*{fa}"]) + self.top.arrays)
            return [line.format(arrays=arrays) for line in template]

        src = "\n".join(self.builder.walks)
        src += _function("run", "fa, args", self.top.lines, "MISS")
        src += "".join(f"    {line}\n" for line in hit("fa"))
        checks = [line.replace("return MISS", "break") for line in self.top.lines]
        lines = ["def fast(*args, **kwargs):", "    try:", "        while not kwargs:"]
        lines += ["            try:", *_indent(checks, 16)]
        lines += ["            except Exception:", "                break"]
        lines += [*_indent(hit("G_FA"), 12)]
        lines += ["        return G_OWNER.slow(G_FA, args, kwargs)"]
        src += "\n".join([*lines, *_indent(_BOUNDARY, 4)]) + "\n"
        extra = {"MISS": MISS, "G_OWNER": owner, "G_SELF": guard, "G_CALL": call}
        extra.update(G_PACKED=Packed, G_HIDE=hide_internal_frames, G_FA=fun_arrays)
        extra.update(G_GC_ENABLED=gc.isenabled, G_GC_DISABLE=gc.disable)
        extra.update(G_GC_ENABLE=gc.enable)
        namespace = self.builder.ns.namespace(src, _FILENAME, extra)
        guard.run = namespace["run"]
        guard.fast = namespace["fast"]
        guard.source = src


def build_guard(args: tuple, leaves: list, treedef: Any) -> GuardCode:
    """The checks of a guard for positional arguments like `args`.

    **Arguments:**

    - `args`: the positional arguments of a call (a tuple).
    - `leaves`, `treedef`: `jax.tree_util.tree_flatten(args)`.

    **Returns:** a `GuardCode`, whose checks pass for arguments of this treedef,
    these leaf types and equal static leaves.

    **Raises:** `ValueError` when this structure cannot be guarded.
    """
    b = _Builder(leaves)
    top = b.code("MISS")
    try:
        if type(args) is not tuple or treedef.node_data() != (tuple, None):
            raise _Unsupported(guard_arguments_message())
        # Unpacking the root fails (-> MISS) on a wrong argument count.
        names = top.unpack("args", len(args))
        for name, x, sub in zip(names, args, treedef.children(), strict=True):
            b.node(top, name, x, sub, True)
    except (_Unsupported, TypeError, ValueError, AttributeError) as e:
        raise unguardable_error(e) from None
    if b.cursor != len(leaves):
        raise guard_leaf_count_error()
    return GuardCode(b, top)


def make_guard(args: tuple, leaves: list, treedef: Any) -> tuple[Callable, int, str]:
    """The check function of a guard for positional arguments like `args` (the
    test hook; the dispatcher uses `build_guard(...).runner`).

    **Arguments:**

    - `args`: the positional arguments of a call (a tuple).
    - `leaves`, `treedef`: `jax.tree_util.tree_flatten(args)`.

    **Returns:** `(check, size, source)`, where `check(args)` returns the list of the
    array leaves of `args` (in flatten order) when they have this treedef, these leaf
    types and equal static leaves, and `None` otherwise.

    **Raises:** `ValueError` when this structure cannot be guarded.
    """
    code = build_guard(args, leaves, treedef)
    check, src = code.check()
    return check, code.size, src


__all__ = [
    "build_guard",
    "fast_entry",
    "FRESH_INLINE_MAX",
    "GC_PAUSE_MIN_ARRAYS",
    "Guard",
    "GuardCode",
    "make_guard",
    "MISS",
]
