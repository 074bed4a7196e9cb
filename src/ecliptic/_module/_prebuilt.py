"""Modules that ecliptic itself builds on: `Partial`, `Static`, and
`module_update_wrapper` (`BoundMethod` is in `_module.py`, next to the metaclass
that makes one on every method read)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax.tree_util as jtu

from .._filters import is_array
from .._messages import static_leaves_array_message, wrapped_property_error
from .._tracebacks import hide_internal_frames
from ._field import field
from ._flatten import WRAPPER_FIELD_NAMES
from ._module import Module


_T = TypeVar("_T")


class Partial(Module):
    """Like `functools.partial`, but a PyTree: the function and the bound arguments
    are its children, so arrays inside them are traced by transformations.

    Works for any callable, including Modules and other callable objects.

    **Arguments:**

    - `func`: the callable.
    - `*args`: positional arguments placed before those given at call time.
    - `**kwargs`: keyword arguments, overridden by those given at call time.

    Calling a `Partial` returns `func(*args, *call_args, **{**kwargs, **call_kwargs})`.
    """

    func: Callable[..., Any]
    args: tuple[Any, ...]
    keywords: dict[str, Any]

    def __init__(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any):
        self.func = func
        self.args = args
        self.keywords = kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.func(*self.args, *args, **self.keywords, **kwargs)
        except Exception as e:  # a transformation used as a method: hide this frame
            hide_internal_frames(e)
            raise


class _StaticMeta(type(Module)):  # pyright: ignore[reportGeneralTypeIssues]
    """The metaclass of `Static`: builds one directly.

    `Static` is made on every eager call of `filter_custom_jvp`, `filter_custom_vjp`
    and `filter_checkpoint`. The general construction path would take it through
    `_construct` (`Generic` defines `__init_subclass__`, so it has no shadow class)
    and the full post-`__init__` checks (its fields are static); this does the same
    work directly: flatten once, fill the instance dict, and warn if a leaf is an
    array, as the static-field check would. A subclass of `Static` takes the
    general path.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is not Static or kwargs or len(args) != 1:
            return super().__call__(*args, **kwargs)
        leaves, treedef = jtu.tree_flatten(args[0])
        leaves = tuple(leaves)
        obj = object.__new__(cls)
        d = obj.__dict__
        d["_leaves"] = leaves
        d["_treedef"] = treedef
        for leaf in leaves:
            if is_array(leaf):
                warnings.warn(static_leaves_array_message(), stacklevel=2)
                break
        return obj


class Static(Module, Generic[_T], metaclass=_StaticMeta):
    """Holds any Python object as part of the PyTree *structure* (no leaves).

    The object is flattened and its leaves and structure stored as static fields, so
    it must be hashable leaf-by-leaf (containers of hashable values are fine). Like
    any static field, it warns if a leaf is an array.

    **Arguments:**

    - `value`: the object to hold. Read it back with `.value`.
    """

    _leaves: tuple[Any, ...] = field(static=True)
    _treedef: Any = field(static=True)

    def __init__(self, value: _T):
        # Reached only by a subclass, or a call that `_StaticMeta` does not serve.
        leaves, self._treedef = jtu.tree_flatten(value)
        self._leaves = tuple(leaves)

    @property
    def value(self) -> _T:
        """The object held."""
        return jtu.tree_unflatten(self._treedef, self._leaves)


def module_update_wrapper(wrapper: Module, wrapped: Callable | None = None) -> Any:
    """Like `functools.update_wrapper`, for Modules: returns a *copy* of `wrapper`
    with `__module__`, `__name__`, `__qualname__`, `__doc__` and `__annotations__`
    taken from `wrapped`. `wrapper` itself is not modified.

    The wrapper's class must define `__wrapped__` as a property that returns the
    wrapped callable (so that the wrapped object is not stored twice).

    **Arguments:**

    - `wrapper`: the wrapper Module instance.
    - `wrapped`: the callable being wrapped; defaults to `wrapper.__wrapped__`.

    **Returns:** the updated copy of `wrapper`.
    """
    cls = type(wrapper)
    if not isinstance(getattr(cls, "__wrapped__", None), property):
        raise wrapped_property_error(cls)
    if wrapped is None:
        wrapped = wrapper.__wrapped__  # pyright: ignore[reportAttributeAccessIssue]
    leaves, treedef = jtu.tree_flatten(wrapper)
    clone = jtu.tree_unflatten(treedef, leaves)
    for name in WRAPPER_FIELD_NAMES:
        try:
            value = getattr(wrapped, name)
        except AttributeError:
            continue
        object.__setattr__(clone, name, value)
    return clone
