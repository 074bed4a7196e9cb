"""`assert_max_traces` / `get_num_traces`: count how often a function is traced."""

from __future__ import annotations

import functools as ft
import inspect
import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.tree_util as jtu

from .._checks import TooManyTracesError
from .._filters import is_array
from .._messages import (
    max_traces_type_error,
    not_trace_counted_error,
    too_many_traces_message,
)
from .._module import field, Module, module_update_wrapper
from .._wrap import api_boundary


# Counters live outside the wrapper, keyed on a tag held as static data, so copies of
# the wrapper made by flatten/unflatten share one counter.
_num_traces: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Tag:
    __slots__ = ("__weakref__",)


def _abstract(value: Any) -> tuple:
    """Shape-level summary of an argument: treedef plus (shape, dtype) per array and
    the value itself for every other leaf."""
    leaves, treedef = jtu.tree_flatten(value)
    summary = tuple(
        jax.ShapeDtypeStruct(x.shape, x.dtype) if is_array(x) else x for x in leaves
    )
    return treedef, summary


def _same(a: tuple, b: tuple) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


class _AssertMaxTraces(Module):
    fn: Callable
    max_traces: int | None = field(static=True)
    tag: _Tag = field(static=True)

    @property
    def __wrapped__(self):
        return self.fn

    @api_boundary
    def __call__(self, *args, **kwargs):
        count = _num_traces[self.tag] = _num_traces[self.tag] + 1
        try:
            arguments = inspect.signature(self.fn).bind(*args, **kwargs).arguments
        except (TypeError, ValueError):
            arguments = {"args": args, "kwargs": kwargs}
        summaries = {name: _abstract(value) for name, value in arguments.items()}
        seen = _seen[self.tag]
        if self.max_traces is not None and count > self.max_traces:
            raise self._error(count, summaries, seen)
        for name, summary in summaries.items():
            seen.setdefault(name, []).append(summary)
        return self.fn(*args, **kwargs)

    def _error(self, count: int, summaries: dict, seen: dict) -> TooManyTracesError:
        """The error for trace number `count`, naming the first argument whose
        summary differs from every earlier one (if any)."""
        argument, changed, previous = None, None, []
        for name, summary in summaries.items():
            earlier = seen.get(name, [])
            if not any(_same(summary, p) for p in earlier):
                argument, changed, previous = name, summary, earlier
                break
        msg = too_many_traces_message(
            self.fn, self.max_traces, count, argument, changed, previous
        )
        return TooManyTracesError(
            msg,
            function_name=_name(self.fn),
            max_traces=self.max_traces,
            count=count,
            argument=argument,
        )


def _name(fn: Any) -> str:
    """`fn`'s `__name__` (or `__qualname__`), looking through wrappers such as
    `functools.partial`; its `repr` if it has none."""
    seen = set()
    while id(fn) not in seen:
        seen.add(id(fn))
        for attr in ("__name__", "__qualname__"):
            name = getattr(fn, attr, None)
            if isinstance(name, str):
                return name
        inner = getattr(fn, "func", None) or getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    return repr(fn)


def _make(fn: Callable, max_traces: int | None) -> _AssertMaxTraces:
    if max_traces is not None and (
        isinstance(max_traces, bool) or not isinstance(max_traces, int)
    ):
        raise max_traces_type_error(max_traces)
    tag = _Tag()
    _num_traces[tag] = 0
    _seen[tag] = {}
    return module_update_wrapper(_AssertMaxTraces(fn, max_traces, tag))


def assert_max_traces(fn: Callable | None = None, *, max_traces: int | None):
    """Raises if `fn` is called (traced) more than `max_traces` times. Put it
    *inside* `jit`, so that it counts traces:

    ```python
    @ecliptic.filter_jit
    @ecliptic.debug.assert_max_traces(max_traces=1)
    def f(x, y): ...
    ```

    **Arguments:**

    - `fn`: the callable to wrap (leave it out to use as a decorator).
    - `max_traces`: keyword-only; the allowed number of calls, or `None` for no limit
        (the count is still available through [`ecliptic.debug.get_num_traces`][]).

    **Returns:** the wrapped callable. Going over the limit raises
    `ecliptic.debug.TooManyTracesError` (a `RuntimeError`), naming the argument
    whose shape, dtype or static value changed; its attributes `function_name`,
    `max_traces`, `count` and `argument` hold the same facts.
    """
    if fn is None:
        return ft.partial(_make, max_traces=max_traces)
    return _make(fn, max_traces)


def _count(fn: Any) -> int | None:
    seen = set()
    while id(fn) not in seen:
        seen.add(id(fn))
        if isinstance(fn, _AssertMaxTraces):
            return _num_traces[fn.tag]
        try:
            fn = fn.__wrapped__
        except AttributeError:
            return None
    return None


def get_num_traces(fn: Callable) -> int:
    """How many times a function wrapped with [`ecliptic.debug.assert_max_traces`][]
    has been traced (the wrapper may sit under other wrappers, e.g. `filter_jit`).

    **Arguments:**

    - `fn`: the wrapped function.

    **Returns:** an `int`.
    """
    count = _count(fn)
    if count is None:
        raise not_trace_counted_error(fn)
    return count
