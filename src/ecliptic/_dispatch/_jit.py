"""`filter_jit`: `jax.jit` for any function of any PyTrees, with a thin dispatch path.

A call tries two strategies in order (see this package's README):

1. **Guards** (`_guard.py`), for calls without keyword arguments: the guard that
   passed on the call after the last guard that passed (a loop of one structure, or
   two models in turn), then the function's other guards. A guard's `run` checks
   the arguments and, when they pass, calls the compiled entry itself; else it
   returns `MISS`.
2. **The ordinary path** (`_ordinary.py`): flatten, look up, compile if new. The
   second time a structure reaches a compiled entry here, a guard is made for it.

Both call a compiled entry the same way (the function's arrays, then the arguments'
arrays, one per positional argument), so they share JAX's compiled code and its C++
fast path. Nothing blocks: the call returns as soon
as `jax.jit` would. A failed `ecliptic.error_if` that JAX reports to this call is
re-raised as `ecliptic.EquinoxRuntimeError` with the user's message.
"""

from __future__ import annotations

import functools as ft
import inspect
import types
import warnings
import weakref
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Literal, overload, TypeVar

import jax
import jax.tree_util as jtu

from .._caches import BoundedCache, register_cache_clear
from .._filters import is_array
from .._messages import (
    jit_donate_error,
    jit_forbidden_kwarg_error,
    jit_lowered_mismatch_error,
    jit_not_callable_error,
    jit_removed_kwargs_fix,
)
from .._module import field, Module, module_update_wrapper
from .._runtime_error import runtime_error_from
from .._wrap import (
    check_removed_kwargs,
    fun_names,
    hashable_static,
    hide_internal_frames,
    Lowered,
    MethodWrapper,
    REMOVED_FILTER_KWARGS,
    static_leaves,
)
from ._guard import build_guard, fast_entry, Guard, MISS
from ._ordinary import Ordinary, rebuild
from ._output import finish


_T = TypeVar("_T")
Donate = Literal["all", "all-except-first", "warn", "warn-except-first", "none"]

_JaxRuntimeError = jax.errors.JaxRuntimeError
_FORBIDDEN = ("static_argnums", "static_argnames", "donate_argnums")
_FORBIDDEN += ("in_shardings",)
# (donate first-argument arrays, donate the other arrays, silence unusable-buffer
# warnings)
_DONATE_MODES = {
    "all": (True, True, True),
    "all-except-first": (False, True, True),
    "warn": (True, True, False),
    "warn-except-first": (False, True, False),
    "none": (False, False, False),
}
# Guards kept per wrapper (argument structures it serves without a flatten). Past it
# the oldest guard is dropped: its structure takes the ordinary path (a flatten and a
# lookup, no retrace) for `GUARD_REARM` calls, and then gets a guard again (so more
# structures than this in turn do not make a guard on every call).
GUARDS_SIZE = 8
GUARD_REARM = 64
# Compiled entries whose ordinary-path calls a wrapper counts (a guard is made on the
# second). Past it the oldest count is dropped: that entry waits one more call.
SEEN_SIZE = 256
# Every live dispatcher, so that `clear_caches` can drop their guards too.
_DISPATCHERS: weakref.WeakSet = weakref.WeakSet()


def _drop_guards() -> None:
    for dispatcher in list(_DISPATCHERS):
        dispatcher.guards = []
        dispatcher.none.next = dispatcher.none
        dispatcher.advance(dispatcher.none)
        dispatcher.seen.clear()


register_cache_clear(_drop_guards)


class _BoundCall(Module):
    """`model.__call__` (any bound method of a PyTree) as a PyTree, so that
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
            return _BoundCall(owner, fun.__func__)
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


class Dispatcher:
    """Everything about one `filter_jit` wrapper that is not a PyTree: its
    signature, the donation mode, its guards and its ordinary path.

    Counters for tests and tuning (`ecliptic._dispatch.dispatch_info`): `hits`
    (calls served by a guard) and `misses` (calls that took the ordinary path)."""

    def __init__(self, fun: Callable, donate: str, jitkwargs: dict):
        try:
            self.sig: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):
            self.sig = None
        self.npos = _positional_count(self.sig)
        self.name, qualname = fun_names(fun)
        tree_fun = _as_pytree_fun(fun)
        leaves, fun_treedef = jtu.tree_flatten(tree_fun)
        fun_static = hashable_static(
            "filter_jit", static_leaves(leaves), {"fun": tree_fun}, "function"
        )
        self.fun_arrays = [x for x in leaves if is_array(x)]
        first, rest, self.quiet = _DONATE_MODES[donate]
        self.ordinary = Ordinary(
            self.name,
            qualname,
            fun_treedef,
            fun_static,
            len(self.fun_arrays),
            (first, rest),
            jitkwargs,
        )
        self.guards: list[Guard] = []
        # `last` is the guard that passed last; before any has, the dispatcher's own
        # `none` guard (no structure passes it), so the hot path never tests for
        # "no guard yet".
        self.none = Guard()
        self.none.fast = fast_entry(self, self.fun_arrays)
        self.last: Guard = self.none
        # The predicted guard's (`last.next`) `fast`, which the wrapper that
        # `filter_jit` returned runs (its `__call__`), and its `run`, which any
        # other wrapper of a function with arrays calls (see `advance`).
        self.fast: Callable = self.none.fast
        self.run: Callable = self.none.run
        # The wrapper `filter_jit` returned, when its function holds arrays (a weak
        # reference): `advance` keeps its `_call` equal to `fast`.
        self.home: weakref.ref | None = None
        self.seen: BoundedCache = BoundedCache(SEEN_SIZE)
        self.hits = self.misses = 0
        _DISPATCHERS.add(self)

    def rebuild_fun(self, fun_arrays) -> Any:
        o = self.ordinary
        fun = rebuild(o.fun_treedef, o.fun_static, fun_arrays)
        if isinstance(fun, _BoundCall):
            return types.MethodType(fun.func, fun.obj)
        return fun

    def flatten(self, args: tuple, kwargs: dict, positional: bool):
        if not positional and self.sig is not None:
            bound = self.sig.bind(*args, **kwargs)
            args, kwargs = bound.args, bound.kwargs
        leaves, treedef = jtu.tree_flatten([args, kwargs] if kwargs else args)
        return args, kwargs, leaves, treedef

    def advance(self, guard: Guard) -> None:
        """`guard` passed: the next call tries `guard.next` first."""
        self.last = guard
        nxt = guard.next
        fast = nxt.fast  # set on every guard: `none`'s here, the others' by `runner`
        assert fast is not None
        self.fast, self.run = fast, nxt.run
        if self.home is not None:
            home = self.home()
            if home is not None:
                vars(home)["_call"] = fast

    def adopt(self, wrapper: Module) -> None:
        """Makes `wrapper` (which holds this dispatcher's function arrays, the
        very objects) the one whose `__call__` is the predicted guard's `fast`."""
        self.home = weakref.ref(wrapper)
        vars(wrapper)["_call"] = self.fast

    def slow(self, fun_arrays, args: tuple, kwargs: dict) -> Any:
        """A call that the predicted guard did not serve: the other guards (when
        there are no keyword arguments), then the ordinary path."""
        if not kwargs:
            prev = self.last
            tried = prev.next
            for g in self.guards:
                if g is not tried:
                    out = g.run(fun_arrays, args)
                    if out is not MISS:
                        prev.next = g
                        self.advance(self.last)
                        return out
        return self.call(fun_arrays, args, kwargs)

    def fail(self, e: Exception) -> None:
        """Raises what a call that raised `e` shows: `e`, or the
        `EquinoxRuntimeError` of a failed `error_if` check."""
        err = None
        if isinstance(e, (_JaxRuntimeError, ValueError)):
            err = runtime_error_from(e)
        if err is None:
            raise e
        raise err from None

    def call(self, fun_arrays, args: tuple, kwargs: dict) -> Any:
        """The ordinary path, for a call no guard served."""
        self.misses += 1
        positional = not kwargs and len(args) == self.npos
        args, kwargs, leaves, treedef = self.flatten(args, kwargs, positional)
        entry, dyn, slot = self.ordinary.lookup(args, kwargs, leaves, treedef)
        if not kwargs:
            self.note(args, leaves, treedef, entry)
        return finish(self.run_quiet(entry, fun_arrays, dyn))

    def note(self, args: tuple, leaves, treedef, entry) -> None:
        """Counts the ordinary-path calls that reach `entry` and makes a guard for
        this structure on the second, so that a one-off call (or the first call)
        never pays for one. `seen[entry]` is `None` once guarded or unguardable."""
        count = self.seen.get(entry, 0)
        if count is None:
            return
        if count < 1:
            self.seen[entry] = count + 1
            return
        self.seen[entry] = None
        try:
            code = build_guard(args, leaves, treedef)
        except ValueError:
            return
        guard = Guard(entry, code.size)
        call = entry if not self.quiet else ft.partial(self.call_quiet, entry)
        code.runner(guard, self, call, self.fun_arrays)
        if len(self.guards) >= GUARDS_SIZE:
            dropped = self.guards.pop(0)
            self.seen[dropped.entry] = 1 - GUARD_REARM
            for g in [self.none, *self.guards]:
                if g.next is dropped:
                    g.next = g
        self.guards.append(guard)
        self.last.next = guard
        self.advance(guard)

    def call_quiet(self, entry, *flat) -> Any:
        """`entry(*flat)` without JAX's warning that donated buffers were not
        usable (the `donate="all"` and `"all-except-first"` modes)."""
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Some donated buffers were not usable"
            )
            return entry(*flat)

    def run_quiet(self, entry, fun_arrays, dyn) -> Any:
        if self.quiet:
            return self.call_quiet(entry, *fun_arrays, *dyn)
        return entry(*fun_arrays, *dyn)

    def lower(self, fun_arrays, args: tuple, kwargs: dict) -> Lowered:
        args, kwargs, leaves, treedef = self.flatten(args, kwargs, False)
        entry, dyn, _ = self.ordinary.lookup(args, kwargs, leaves, treedef)
        lowered = self.run_quiet(entry.lower, fun_arrays, dyn)
        return Lowered(lowered, ft.partial(self.call_compiled, entry, fun_arrays))

    def call_compiled(self, entry, fun_arrays, compiled, args, kwargs) -> Any:
        args, kwargs, leaves, treedef = self.flatten(args, kwargs, False)
        found, dyn, _ = self.ordinary.lookup(args, kwargs, leaves, treedef)
        if found is not entry:
            raise jit_lowered_mismatch_error(self.name)
        try:
            return finish(self.run_quiet(compiled, fun_arrays, dyn))
        except (_JaxRuntimeError, ValueError) as e:
            self.fail(e)


class _JitWrapper(MethodWrapper):
    fn: str = field(static=True)
    _dynamic_fun: list = field(repr=False)
    _dispatch: Dispatcher = field(static=True, repr=False)

    @property
    def __wrapped__(self):
        return self._dispatch.rebuild_fun(self._dynamic_fun)

    # Calling a wrapper calls its `_call`. For the wrapper that `filter_jit`
    # returned, `_call` is an instance attribute that its dispatcher keeps equal to
    # the predicted guard's `fast` (`Dispatcher.adopt`), so the call runs one
    # Python frame (`__call__` is a property read in C). Any other instance (a copy
    # made by a transformation, with other arrays) runs `_call_unadopted`.
    __call__ = property(attrgetter("_call"))  # pyright: ignore

    def __getstate__(self) -> dict:
        # A copy is not the adopted wrapper: it calls `_call_unadopted`.
        state = dict(self.__dict__)
        state.pop("_call", None)
        return state

    def lower(self, /, *args, **kwargs) -> Lowered:
        """Lowers for these arguments without running; see [`Lowered`][]."""
        try:
            return self._dispatch.lower(self._dynamic_fun, args, kwargs)
        except Exception as e:
            hide_internal_frames(e)
            raise


def _call_unadopted(self: _JitWrapper, /, *args, **kwargs) -> Any:
    """The call of a wrapper that its dispatcher did not adopt (a copy made by a
    transformation, perhaps with other arrays): the predicted guard's `run` with
    this wrapper's arrays, then the dispatcher's `slow` path."""
    # The whole body is one boundary (free on the happy path): an error from the
    # user's function shows the user's frames, not ecliptic's, and a failed
    # `error_if` check raises `EquinoxRuntimeError`.
    try:
        # The predicted guard (the successor of the last one that passed) is tried
        # first: its `run` checks the arguments and calls the compiled function.
        # `slow` tries the others, then the ordinary path.
        if not kwargs:
            out = self._dispatch.run(self._dynamic_fun, args)
            if out is not MISS:
                return out
        return self._dispatch.slow(self._dynamic_fun, args, kwargs)
    except Exception as e:
        try:
            self._dispatch.fail(e)
        except Exception as shown:
            hide_internal_frames(shown)
            raise


# Set after the class is made: a function in a Module's class body would be wrapped
# to return a `BoundMethod` Module (a PyTree), which costs a Module per call.
_JitWrapper._call = _call_unadopted  # pyright: ignore[reportAttributeAccessIssue]


class _PlainJitWrapper(_JitWrapper):
    """The wrapper of a function that holds no arrays (most functions): calling it
    calls its dispatcher's `fast` directly, a generated function that holds the
    whole hot path (the predicted guard's checks, the compiled call, the slow path
    when they fail and the error boundary), one Python frame in all. `__call__` is a
    property read in C (`attrgetter`), so no frame of ecliptic's own runs first."""

    __call__ = property(attrgetter("_dispatch.fast"))  # pyright: ignore


# Both kinds print as Equinox's does, `_JitWrapper(fn='f')`.
_PlainJitWrapper.__name__ = _PlainJitWrapper.__qualname__ = "_JitWrapper"


def _check_jitkwargs(jitkwargs: dict) -> None:
    check_removed_kwargs(
        jitkwargs,
        REMOVED_FILTER_KWARGS,
        "filter_jit",
        jit_removed_kwargs_fix(),
    )
    for name in _FORBIDDEN:
        if name in jitkwargs:
            raise jit_forbidden_kwarg_error(name)


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
        `donate_argnums` or `in_shardings`: place the arguments with
        [`ecliptic.filter_shard`][] instead). `out_shardings` is a sharding, or a
        PyTree of them that is a prefix of the output (`None` leaves a part to XLA),
        such as `(plan, state_plan, None)` with `plan` from
        [`ecliptic.sharding_plan`][]: the output's arrays are laid out so (a
        sharding constraint on the output, inside the trace).

    **Returns:** the compiled function (a Module). Non-array outputs are returned as
    they are. It has `.lower(*args, **kwargs)`, and it does not block: it returns as
    soon as `jax.jit` does. A failed [`ecliptic.error_if`][] raises
    [`ecliptic.EquinoxRuntimeError`][] with its message.
    """
    if fun is None:
        return ft.partial(filter_jit, donate=donate, **jitkwargs)
    _check_jitkwargs(jitkwargs)
    if donate not in _DONATE_MODES:
        raise jit_donate_error(donate)
    if not callable(fun):
        raise jit_not_callable_error(fun)
    dispatch = Dispatcher(fun, donate, jitkwargs)
    cls = _PlainJitWrapper if not dispatch.fun_arrays else _JitWrapper
    wrapper = cls(
        fn=dispatch.name, _dynamic_fun=dispatch.fun_arrays, _dispatch=dispatch
    )
    wrapper = module_update_wrapper(wrapper)
    if dispatch.fun_arrays:
        dispatch.adopt(wrapper)
    return wrapper
