"""`filter_jit`: `jax.jit` for arbitrary PyTrees, with a thin dispatch path.

Array leaves (`ecliptic.is_array`) are traced; every other leaf is static (hashed and
compared). A call with the expected number of positional arguments (and no keyword
arguments) tries two shortcuts before the ordinary path (`_JitWrapper.__call__`).

**Guard path.** After an ordinary call, the dispatcher holds a *guard* for that
argument structure (`_guard.py`): a generated function that walks the arguments
with the exact node types, lengths, keys, static fields and static leaves of that
call, and returns their arrays in flatten order, or `None` at the first difference.
A call that passes it goes straight to the same compiled entry, with no flatten and
no treedef hash. This is the path of a training loop, whose model and optimiser
state are new objects of the same structure on every call. A short guard (small
arguments) runs alone; a long one runs after the memo path.

**Memo path**, for arguments that are each a `jax.Array`/NumPy array or a Module
whose flatten is memoised by `_flat_cache` (a Module is memoised the second time it
is passed, if its tree holds no PyTree node other than Modules, tuples, lists, dicts
and `None`, and no tracer or unhashable leaf). Per argument it reads the memo by
`id`, checks `ref() is arg` and that no list/dict inside changed (an identity test
of their items), and appends the memoised arrays. The key is the tuple of interned
tokens (one per `(treedef, leaf types, static leaves)`, hashed by identity) and array
types; a dict lookup gives the compiled entry. Its cost does not grow with the size
of the model, so large models passed again and again (inference) take it.

**Ordinary path** (`_Dispatcher.call`/`resolve`):

1. bind the arguments to the signature (skipped when only the expected number of
   positional arguments is passed);
2. flatten the arguments once (`args`, or `[args, kwargs]` when there are keyword
   arguments) and take the tuple of leaf *types*;
3. look up the slot for this treedef and check its leaf types (a treedef seen with
   other types too has further slots keyed on `(treedef, types)`). The slot knows
   which positions hold arrays (the mask depends only on the types), so static leaves
   and arrays are picked out with C-level `itemgetter`s; when there are static
   leaves, a second dict keyed on their values picks the compiled entry;
4. record a memo-path entry and install the guard for this structure.

Every path calls the entry with the same argument structure (two lists of arrays),
so they share JAX's compiled code. The entry is a `jax.jit` of a function of those
lists only, so JAX's C++ fast path does the rest. An output whose leaves are all
arrays leaves `jax.jit` as it is; any other output comes back as a `_Packed` (the
arrays, and a function that rebuilds the output with its non-array leaves). Only
arrays ever reach JAX as outputs: JAX's C++ dispatch path is disabled for functions
whose outputs hold non-array leaves (say, a model with an activation function in it).

Nothing blocks: the call returns as soon as `jax.jit` would. A failed
`ecliptic.error_if` that JAX reports to this call is re-raised as
`ecliptic.EquinoxRuntimeError` with the user's message.
"""

from __future__ import annotations

import functools as ft
import inspect
import types
import warnings
import weakref
from collections.abc import Callable
from operator import is_, itemgetter
from typing import Any, Literal, overload, TypeVar

import jax
import jax.tree_util as jtu
import numpy as np

from ._caches import register_cache_clear
from ._errors import runtime_error_from
from ._filters import is_array
from ._flat_cache import (
    CACHE as _FLAT_CACHE,
    FAST_ARRAY_TYPES,
    note,
    stale_more,
)
from ._guard import make_guard
from ._module import field, Module, module_update_wrapper, Partial


_T = TypeVar("_T")
Donate = Literal["all", "all-except-first", "warn", "warn-except-first", "none"]

_JaxRuntimeError = jax.errors.JaxRuntimeError
_ARRAY_CLASSES = (jax.Array, np.ndarray, np.generic)
_FORBIDDEN = ("static_argnums", "static_argnames", "donate_argnums")
_FORBIDDEN_SHARDINGS = ("in_shardings", "out_shardings")
_REMOVED = ("default", "fn", "args", "kwargs", "out")
# (donate first-argument arrays, donate the other arrays, silence unusable-buffer
# warnings)
_DONATE_MODES = {
    "all": (True, True, True),
    "all-except-first": (False, True, True),
    "warn": (True, True, False),
    "warn-except-first": (False, True, False),
    "none": (False, False, False),
}


class _Packed(tuple):
    """`(rebuild, arrays)`: what a compiled function returns when the user's output
    has non-array leaves; `rebuild(arrays)` gives the user's output back.

    An output whose leaves are all arrays leaves `jax.jit` as it is (JAX's C++ path
    unflattens it). Any other output is packed: a PyTree node whose children are the
    output arrays and whose auxiliary data is `rebuild` (holding the treedef and the
    non-array leaves, kept by JAX per compiled signature). JAX's C++ dispatch path is
    disabled for functions whose outputs hold non-array leaves (say, a model with an
    activation function in it), so those leaves never reach JAX. Users never see a
    `_Packed`, so `type(out) is _Packed` tells the two kinds apart."""

    __slots__ = ()


jtu.register_pytree_node(
    _Packed,
    lambda p: (p[1], p[0]),
    lambda rebuild, arrays: _Packed((rebuild, arrays)),
)


def _split_output(out: Any) -> Any:
    leaves, treedef = jtu.tree_flatten(out)
    if all(map(is_array, leaves)):
        return out
    static = tuple(None if is_array(x) else x for x in leaves)
    arrays = [x for x in leaves if is_array(x)]
    return _Packed((ft.partial(_rebuild, treedef, static), arrays))


def _finish(out: Any) -> Any:
    """The user's output from what the compiled function returned (the hot paths
    inline this)."""
    if type(out) is _Packed:
        return out[0](out[1])
    return out


def _rebuild(treedef, static: tuple | None, arrays) -> Any:
    if static is None:
        return jtu.tree_unflatten(treedef, arrays)
    it = iter(arrays)
    leaves = [next(it) if s is None else s for s in static]
    return jtu.tree_unflatten(treedef, leaves)


def _getter(positions: list[int]) -> Callable[[list], tuple]:
    if len(positions) == 0:
        return lambda leaves: ()
    if len(positions) == 1:
        (i,) = positions
        return lambda leaves: (leaves[i],)
    return itemgetter(*positions)


def _list_getter(positions: list[int]) -> Callable[[list], list]:
    # The array list handed to `jax.jit` is always a list, whichever path built
    # it (a tuple would be another PyTree structure to JAX: a retrace).
    if len(positions) == 0:
        return lambda leaves: []
    if len(positions) == 1:
        (i,) = positions
        return lambda leaves: [leaves[i]]
    get = itemgetter(*positions)
    return lambda leaves: list(get(leaves))


def _path_str(path) -> str:
    head, *rest = path
    name = "args" if head.idx == 0 else "kwargs"
    return name + jtu.keystr(tuple(rest))


def _unhashable_error(tree: Any, where: str) -> ValueError:
    for path, leaf in jtu.tree_flatten_with_path(tree)[0]:
        if is_array(leaf):
            continue
        try:
            hash(leaf)
        except TypeError:
            name = _path_str(path) if where == "arguments" else "fun" + jtu.keystr(path)
            return ValueError(
                f"Non-hashable static arguments are not supported. filter_jit "
                f"treats every non-array leaf as static, so it must be hashable, but "
                f"`{name}` is an unhashable {type(leaf).__name__}: {leaf!r}. Fix: "
                "turn it into an array (jnp.asarray), make it hashable (e.g. a tuple "
                "instead of a list inside a custom object), or close over it."
            )
    return ValueError(
        f"Non-hashable static arguments are not supported: hashing the static leaves "
        f"of the {where} raised TypeError. Fix: make every non-array leaf hashable."
    )


class _Slot:
    """What is known for one `(treedef, leaf types)`: where the arrays are, and the
    compiled entries by static-leaf values."""

    __slots__ = (
        "types",
        "mask",
        "static_get",
        "dyn_get",
        "n_first",
        "entry",
        "by_static",
        "guards",
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
        # compiled entry -> its guard (`_guard.make_guard`), or None if unguardable
        self.guards: dict = {}


# Dispatch tables shared by every wrapper of the same function (same static parts,
# same donation and jit options), so `filter_jit(f)(x)` in a loop compiles once.
_TABLES: dict[Any, dict] = {}
# The same tables' fast part: `(token or array type per argument) -> (entry, n_first)`.
_FAST_TABLES: dict[Any, dict] = {}
_MAX_TABLES = 1024
_MAX_SLOTS = 4096
_MAX_FAST = 1024
_cache_get = _FLAT_CACHE.get
# A guard of at most this many lines runs faster than the memo path (about a
# depth-4 MLP; measured with benchmarks/bench_dispatch.py's models), so for such
# arguments the memo path is not tried.
_SHORT_GUARD = 40
_UNSEEN = object()
_PENDING = object()
_ModuleMeta = type(Module)


# Every live dispatcher, so that `clear_caches` can drop their guards too.
_DISPATCHERS: weakref.WeakSet = weakref.WeakSet()


def _clear_tables() -> None:
    for tables in (_TABLES, _FAST_TABLES):
        for table in tables.values():
            table.clear()
        tables.clear()
    for dispatcher in list(_DISPATCHERS):
        dispatcher.guard = None


register_cache_clear(_clear_tables)


def _table_for(tables: dict, key: Any) -> dict:
    try:
        table = tables.get(key)
    except TypeError:  # unhashable jit options: a private table
        return {}
    if table is None:
        if len(tables) >= _MAX_TABLES:
            tables.pop(next(iter(tables)))
        table = tables[key] = {}
    return table


class _MagicMethod(Module):
    """`model.__call__` (and other bound methods of a PyTree) as a PyTree, so that
    `filter_jit(model.__call__)` traces the weights instead of baking them in."""

    obj: Any
    func: Callable = field(static=True)

    def __call__(self, *args, **kwargs):
        return self.func(self.obj, *args, **kwargs)


def _as_pytree_fun(fun: Callable) -> Callable:
    if isinstance(fun, types.MethodType):
        owner = fun.__self__
        if not isinstance(owner, type) and not jtu.treedef_is_leaf(
            jtu.tree_structure(owner)
        ):
            return _MagicMethod(owner, fun.__func__)
    return fun


def _positional_count(sig: inspect.Signature | None) -> int:
    """How many positional arguments can skip `signature.bind` (-1: never)."""
    if sig is None:
        return -1
    count = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return -1
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            return -1
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


class _Dispatcher:
    """Everything static about one `filter_jit` wrapper, and its hot path."""

    def __init__(self, fun: Callable, donate: str, jitkwargs: dict):
        try:
            self.sig: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):
            self.sig = None
        self.npos = _positional_count(self.sig)
        self.name = getattr(fun, "__name__", type(fun).__name__)
        self.qualname = getattr(fun, "__qualname__", self.name)
        tree_fun = _as_pytree_fun(fun)
        leaves, self.fun_treedef = jtu.tree_flatten(tree_fun)
        self.fun_static = tuple(None if is_array(x) else x for x in leaves)
        self.fun_arrays = [x for x in leaves if is_array(x)]
        first, rest, self.quiet = _DONATE_MODES[donate]
        self.split = first != rest
        self.direct = not (self.split or self.quiet)
        self.fails = 0
        # `(guard, entry, n_first, short)` for the structure of the last
        # ordinary-path positional call (see `_guard.py`), or None.
        self.guard: tuple | None = None
        _DISPATCHERS.add(self)
        if self.split:
            self.donate_argnums: tuple[int, ...] = (0, 2)
        else:
            self.donate_argnums = (0, 1) if first else ()
        self.jitkwargs = jitkwargs
        jit_key = (donate, tuple(sorted(jitkwargs.items())))
        try:
            hash((self.fun_treedef, self.fun_static))
        except TypeError:
            raise _unhashable_error(tree_fun, "fun") from None
        table_key = (self.fun_treedef, self.fun_static, jit_key)
        self.table = _table_for(_TABLES, table_key)
        self.fast = _table_for(_FAST_TABLES, table_key)
        self.fast_get = self.fast.get

    def rebuild_fun(self, fun_arrays) -> Any:
        fun = _rebuild(self.fun_treedef, self.fun_static, fun_arrays)
        if isinstance(fun, _MagicMethod):
            return types.MethodType(fun.func, fun.obj)
        return fun

    def bind(self, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if self.sig is None:
            return args, kwargs
        bound = self.sig.bind(*args, **kwargs)
        return bound.args, bound.kwargs

    def call(self, fun_arrays, args: tuple, kwargs: dict, positional: bool) -> Any:
        """The ordinary path, when the fast path (in `_JitWrapper.__call__`) missed:
        flatten everything, look up by treedef and types. A plain positional call
        also tries to record a fast-table entry (see `remember`)."""
        if not positional:
            args, kwargs = self.bind(args, kwargs)
        leaves, treedef = jtu.tree_flatten([args, kwargs] if kwargs else args)
        types = tuple(map(type, leaves))
        slot = self.table.get(treedef)
        if slot is not None and slot.types != types:
            slot = self.table.get((treedef, types))
        entry = None
        dyn = leaves
        if slot is not None:
            if slot.static_get is None:
                entry = slot.entry
            else:
                try:
                    entry = slot.by_static.get(slot.static_get(leaves))
                except TypeError:
                    entry = None
                dyn = slot.dyn_get(leaves)
        if entry is None or slot is None:
            entry, dyn, slot = self.resolve(args, kwargs, leaves, treedef)
        if positional:
            self.try_remember(args, entry, slot.n_first)
            self.install_guard(args, leaves, treedef, slot, entry)
        if self.direct:
            try:
                return _finish(entry(fun_arrays, dyn))
            except (_JaxRuntimeError, ValueError) as exc:
                err = runtime_error_from(exc)
                if err is None:
                    raise
                raise err from None
        return self.invoke(entry, fun_arrays, dyn, slot.n_first)

    def install_guard(self, args: tuple, leaves, treedef, slot: _Slot, entry) -> None:
        """Makes the guard for this structure the one the next call tries first.
        It is built once per compiled entry, the second time the entry is reached
        here, so that a one-off call (or the first call) never pays for it."""
        guard = slot.guards.get(entry, _UNSEEN)
        if guard is _UNSEEN:
            slot.guards[entry] = _PENDING
            return
        if guard is _PENDING:
            guard = slot.guards[entry] = make_guard(args, leaves, treedef)
        if guard is None:
            self.guard = None
        else:
            short = guard.checks <= _SHORT_GUARD
            self.guard = (guard, entry, slot.n_first, short)

    def try_remember(self, args: tuple, entry, n_first: int) -> None:
        """`remember`, unless it has been failing: after 8 calls in a row that
        could not be remembered (e.g. a training step, whose model is new each
        call) it is tried on every 64th call only, and `fails >= 8` also tells the
        hot path to skip the memo path."""
        fails = self.fails
        if fails < 8 or not fails & 63:
            fails = -1 if self.remember(args, entry, n_first) else fails
        self.fails = fails + 1

    def remember(self, args: tuple, entry, n_first: int) -> bool:
        """Records a fast-table entry for these arguments if each is an array or a
        memoised Module (`_flat_cache.note`, which memoises on a second sighting).
        Returns whether it did."""
        for a in args:
            t = type(a)
            if t not in FAST_ARRAY_TYPES and not isinstance(t, _ModuleMeta):
                return False  # this argument can never be memoised
        key = []
        for a in args:
            t = type(a)
            if t in FAST_ARRAY_TYPES:
                key.append(t)
                continue
            e = note(a)
            if e is None:
                return False
            key.append(e.token)
        fast = self.fast
        if len(fast) >= _MAX_FAST:
            fast.clear()
        fast[tuple(key)] = (entry, n_first)
        return True

    def invoke(self, entry, fun_arrays, dyn, k: int) -> Any:
        try:
            if self.direct:
                return _finish(entry(fun_arrays, dyn))
            if self.quiet:
                with warnings.catch_warnings():
                    warnings.filterwarnings(
                        "ignore", message="Some donated buffers were not usable"
                    )
                    return _finish(self.run(entry, fun_arrays, dyn, k))
            if self.split:
                return _finish(entry(fun_arrays, dyn[:k], dyn[k:]))
            return _finish(entry(fun_arrays, dyn))
        except (_JaxRuntimeError, ValueError) as e:
            err = runtime_error_from(e)
            if err is None:
                raise
            raise err from None

    def run(self, entry, fun_arrays, dyn, k: int) -> Any:
        if self.split:
            return entry(fun_arrays, dyn[:k], dyn[k:])
        return entry(fun_arrays, dyn)

    def lookup(self, args: tuple, kwargs: dict):
        args, kwargs = self.bind(args, kwargs)
        leaves, treedef = jtu.tree_flatten([args, kwargs] if kwargs else args)
        return self.resolve(args, kwargs, leaves, treedef)

    def lower(self, fun_arrays, args: tuple, kwargs: dict) -> Lowered:
        entry, dyn, slot = self.lookup(args, kwargs)
        lower = ft.partial(self.run, entry.lower, fun_arrays, dyn, slot.n_first)
        if self.quiet:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message="Some donated buffers were not usable"
                )
                return Lowered(lower(), self, fun_arrays, entry)
        return Lowered(lower(), self, fun_arrays, entry)

    def resolve(self, args, kwargs, leaves, treedef):
        """Slow path: classify leaves, build the slot and the compiled entry."""
        types = tuple(map(type, leaves))
        slot = self.table.get(treedef)
        if slot is None or slot.types != types:
            slot = self.table.get((treedef, types))
        if slot is None:
            mask = [isinstance(x, _ARRAY_CLASSES) for x in leaves]
            n_first_leaves = jtu.tree_structure(args[0]).num_leaves if args else 0
            slot = _Slot(types, mask, sum(mask[:n_first_leaves]))
            if len(self.table) >= _MAX_SLOTS:
                self.table.pop(next(iter(self.table)))
            # The first type pattern seen for a treedef is keyed by the treedef alone.
            self.table[(treedef, types) if treedef in self.table else treedef] = slot
        has_kwargs = bool(kwargs)
        if slot.static_get is None:
            if slot.entry is None:
                slot.entry = self.make_entry(treedef, None, has_kwargs)
            return slot.entry, leaves, slot
        statics = slot.static_get(leaves)
        try:
            entry = slot.by_static.get(statics)
        except TypeError:
            raise _unhashable_error((args, kwargs), "arguments") from None
        if entry is None:
            static = tuple(
                None if m else x for x, m in zip(leaves, slot.mask, strict=True)
            )
            entry = self.make_entry(treedef, static, has_kwargs)
            slot.by_static[statics] = entry
        return entry, slot.dyn_get(leaves), slot

    def make_entry(self, in_treedef, in_static: tuple | None, has_kwargs: bool):
        fun_treedef, fun_static = self.fun_treedef, self.fun_static

        def flat_fun(fun_arrays, *arrays):
            fun = _rebuild(fun_treedef, fun_static, fun_arrays)
            dyn = arrays[0] if len(arrays) == 1 else (*arrays[0], *arrays[1])
            tree = _rebuild(in_treedef, in_static, dyn)
            args, kwargs = tree if has_kwargs else (tree, {})
            return _split_output(fun(*args, **kwargs))

        flat_fun.__name__ = self.name
        flat_fun.__qualname__ = self.qualname
        return jax.jit(flat_fun, donate_argnums=self.donate_argnums, **self.jitkwargs)


class Compiled:
    """A compiled `filter_jit` function for one argument structure: call it with
    arguments of the same structure, shapes, dtypes and static values."""

    def __init__(self, compiled, dispatch: _Dispatcher, fun_arrays, entry):
        self._compiled = compiled
        self._dispatch = dispatch
        self._fun_arrays = fun_arrays
        self._entry = entry

    def as_text(self) -> str:
        return self._compiled.as_text()

    def __call__(self, *args, **kwargs) -> Any:
        entry, dyn, slot = self._dispatch.lookup(args, kwargs)
        if entry is not self._entry:
            raise TypeError(
                f"This compiled `{self._dispatch.name}` was lowered for other static "
                "arguments or another argument structure than the ones given now. "
                "Fix: call `.lower(...)` again with these arguments, or call the "
                "`filter_jit` function directly."
            )
        try:
            return _finish(
                self._dispatch.run(self._compiled, self._fun_arrays, dyn, slot.n_first)
            )
        except (_JaxRuntimeError, ValueError) as e:
            err = runtime_error_from(e)
            if err is None:
                raise
            raise err from None


class Lowered:
    """The result of `filter_jit(f).lower(*args, **kwargs)`."""

    def __init__(self, lowered, dispatch: _Dispatcher, fun_arrays, entry):
        self._lowered = lowered
        self._dispatch = dispatch
        self._fun_arrays = fun_arrays
        self._entry = entry

    def as_text(self) -> str:
        """The lowered program (StableHLO) as text."""
        return self._lowered.as_text()

    def compile(self) -> Compiled:
        """Compiles the lowered program; returns a callable."""
        compiled = self._lowered.compile()
        return Compiled(compiled, self._dispatch, self._fun_arrays, self._entry)


class _JitWrapper(Module):
    fn: str = field(static=True)
    _dynamic_fun: list = field(repr=False)
    _dispatch: _Dispatcher = field(static=True, repr=False)

    @property
    def __wrapped__(self):
        return self._dispatch.rebuild_fun(self._dynamic_fun)

    def __call__(self, /, *args, **kwargs):
        d = self._dispatch
        g = d.guard
        if g is not None and g[3] and not kwargs:
            # A short guard (small arguments) beats the memo path: it alone runs.
            # (A guard checks the argument count too.)
            dyn = g[0](args)
            if dyn is None:
                return d.call(self._dynamic_fun, args, kwargs, len(args) == d.npos)
            _, entry, k, _ = g
        elif kwargs or len(args) != d.npos:
            return d.call(self._dynamic_fun, args, kwargs, False)
        else:
            entry = None
            # (Skipped while `remember` is failing, e.g. in a training loop, where
            # each call brings a new model: see `_Dispatcher.call`.)
            if d.fails < 8:
                # Memo path: every argument is an array or a Module whose flatten
                # is memoised (`_flat_cache`); the key is identity-hashed tokens and
                # array types, so no PyTree is flattened and no treedef hashed. The
                # first list/dict inside a Module is checked for changes inline.
                key = []
                dyn = []
                for a in args:
                    t = type(a)
                    if t in FAST_ARRAY_TYPES:
                        key.append(t)
                        dyn.append(a)
                        continue
                    e = _cache_get(id(a))
                    if e is None or e.ref() is not a:
                        break
                    c = e.cont
                    if c is not None and (
                        len(c) != e.n
                        or not all(map(is_, c, e.snap))
                        or (e.more is not None and stale_more(e.more))
                    ):
                        break
                    key.append(e.token)
                    dyn += e.arrays
                else:
                    hit = d.fast_get(tuple(key))
                    if hit is not None:
                        entry, k = hit
            if entry is None:
                # Guard path: the arguments have the structure of the last ordinary
                # call; a generated function checks it and collects the arrays
                # (`_guard.py`).
                if g is None:
                    return d.call(self._dynamic_fun, args, kwargs, True)
                dyn = g[0](args)
                if dyn is None:
                    return d.call(self._dynamic_fun, args, kwargs, True)
                _, entry, k, _ = g
                # Lets the memo path take over for Modules passed again.
                d.try_remember(args, entry, k)
        if not d.direct:
            return d.invoke(entry, self._dynamic_fun, dyn, k)
        try:
            out = entry(self._dynamic_fun, dyn)
        except (_JaxRuntimeError, ValueError) as exc:
            err = runtime_error_from(exc)
            if err is None:
                raise
            raise err from None
        if type(out) is _Packed:
            return out[0](out[1])
        return out

    def lower(self, /, *args, **kwargs) -> Lowered:
        """Lowers for these arguments without running; see [`Lowered`][]."""
        return self._dispatch.lower(self._dynamic_fun, args, kwargs)

    def __get__(self, instance, owner):
        del owner
        if instance is None:
            return self
        return Partial(self, instance)


def _check_jitkwargs(jitkwargs: dict) -> None:
    for name in _REMOVED:
        if name in jitkwargs:
            raise ValueError(
                f"filter_jit no longer accepts `{name}=` (removed in Equinox 0.10). "
                "Array leaves are traced and all other leaves are static; to hold an "
                "array static, close over it or wrap it in a non-array object."
            )
    for name in _FORBIDDEN + _FORBIDDEN_SHARDINGS:
        if name in jitkwargs:
            raise ValueError(
                f"filter_jit does not accept `{name}=`: it decides what is static "
                "(non-arrays) and traced (arrays) itself, and donation is set with "
                "`donate=`. Fix: remove it; pass static values as non-array "
                "arguments, or shard arrays with `ecliptic.filter_shard`."
            )


@overload
def filter_jit(
    *, donate: Donate = "none", **jitkwargs
) -> Callable[[Callable[..., _T]], Callable[..., _T]]: ...


@overload
def filter_jit(
    fun: Callable[..., _T], *, donate: Donate = "none", **jitkwargs
) -> Callable[..., _T]: ...


def filter_jit(fun=None, *, donate: Donate = "none", **jitkwargs):
    """`jax.jit` for any function of any PyTrees: every array leaf
    ([`ecliptic.is_array`][]) is traced, every other leaf is static (hashed and
    compared; a new value recompiles).

    **Arguments:**

    - `fun`: the function to compile. It may itself be a PyTree (a Module, a
        `Partial`, `model.__call__`): its arrays are traced too. Usable as
        `@filter_jit` or `@filter_jit(donate=...)`.
    - `donate`: which argument buffers XLA may reuse: `"all"`, `"all-except-first"`
        (everything except the first argument's arrays), `"warn"` /
        `"warn-except-first"` (the same, without silencing JAX's "donated buffers
        were not usable" warning), or `"none"` (default).
    - `**jitkwargs`: passed to `jax.jit` (not `static_argnums`, `static_argnames`,
        `donate_argnums`, `in_shardings` or `out_shardings`).

    **Returns:** the compiled function (a Module). Non-array outputs are returned as
    they are. It has `.lower(*args, **kwargs)`, and it does not block: it returns as
    soon as `jax.jit` does. A failed [`ecliptic.error_if`][] raises
    [`ecliptic.EquinoxRuntimeError`][] with its message.
    """
    if fun is None:
        return ft.partial(filter_jit, donate=donate, **jitkwargs)
    _check_jitkwargs(jitkwargs)
    if donate not in _DONATE_MODES:
        raise ValueError(
            "filter_jit expected `donate` to be one of 'all', 'all-except-first', "
            f"'warn', 'warn-except-first' or 'none', but got {donate!r}. Fix: pass "
            "one of those, e.g. donate='all'."
        )
    if not callable(fun):
        raise TypeError(
            f"filter_jit expected a callable, but got {type(fun).__name__} {fun!r}. "
            "Fix: pass the function itself: `filter_jit(f)`, not `filter_jit(f())`."
        )
    dispatch = _Dispatcher(fun, donate, jitkwargs)
    wrapper = _JitWrapper(
        fn=dispatch.name, _dynamic_fun=dispatch.fun_arrays, _dispatch=dispatch
    )
    return module_update_wrapper(wrapper)
