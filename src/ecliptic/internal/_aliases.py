"""Names `equinox.internal` keeps for documentation tooling, pretty printing and
debugging: `doc_repr`, `doc_remove_args`, `TreeWLCustom`, `assert_dce` and
`announce_jaxpr_p`."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any, Literal, TYPE_CHECKING, TypeVar

import jax
import jax.core
import jax.numpy as jnp
import wadler_lindig as wl
from jaxtyping import PyTree

from .._errors import error_if
from .._pretty_print import make_custom
from ..debug._announce_transform import announce_jaxpr_p as _announce_p


_T = TypeVar("_T")


def _generating_documentation() -> bool:
    # Documentation builds set `typing.GENERATING_DOCUMENTATION` (the convention of
    # Equinox's documentation tooling).
    return hasattr(typing, "GENERATING_DOCUMENTATION")


class _ShownAs(type):
    """A stand-in for an object, shown in documentation as a given string. A `type`,
    so that it can also appear inside annotations such as `Sequence[...]`."""

    def __new__(mcs, obj: Any, string: str):
        cls = super().__new__(mcs, string, (), {})
        cls.__module__ = "builtins"  # keeps typing's repr from adding a module path
        return cls

    def __init__(cls, obj: Any, string: str):
        cls.obj = obj
        cls.string = string

    def __repr__(cls) -> str:
        return cls.string

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.obj(*args, **kwargs)


def doc_repr(obj: _T, string: str) -> _T:
    """`obj`, shown as `string` in generated documentation (e.g. for a default value
    whose `repr` is unreadable). Outside documentation builds it returns `obj`.

    **Arguments:**

    - `obj`: any object.
    - `string`: how documentation should show it.

    **Returns:** `obj` (or, in a documentation build, a callable stand-in).
    """
    if TYPE_CHECKING or not _generating_documentation():
        return obj
    return _ShownAs(obj, string)  # pyright: ignore[reportReturnType]


def doc_remove_args(*names: str) -> Callable[[_T], _T]:
    """Decorator that hides the arguments `names` from a function's signature in
    generated documentation. Outside documentation builds it does nothing.

    **Arguments:**

    - `*names`: the argument names to hide.

    **Returns:** the decorator.
    """

    def decorate(fn: _T) -> _T:
        if _generating_documentation():
            sig = inspect.signature(fn)  # pyright: ignore[reportArgumentType]
            kept = [p for p in sig.parameters.values() if p.name not in names]
            # `object.__setattr__`, so that frozen wrappers (Modules) accept it too.
            object.__setattr__(fn, "__signature__", sig.replace(parameters=kept))
        return fn

    return decorate


@dataclasses.dataclass(slots=True)
class TreeWLCustom:
    """The `custom` hook of `wadler_lindig.pformat` used to print PyTrees.

    **Arguments:**

    - `truncate_leaf`: `truncate_leaf(node) -> bool`; nodes for which it is true are
        printed as `ClassName(...)`.
    - `short_arrays`: print JAX arrays as their dtype and shape (e.g. `f32[3,4]`;
        `weak_f32` for weakly typed ones).
    - `struct_as_array`: also print `jax.ShapeDtypeStruct`s that way.

    Calling it on an object returns its document, or `None` for the default printing.
    """

    truncate_leaf: Callable[[Any], bool]
    short_arrays: bool
    struct_as_array: bool

    def __call__(self, obj: Any) -> wl.AbstractDoc | None:
        custom = make_custom(
            self.truncate_leaf, self.short_arrays, self.struct_as_array
        )
        return custom(obj)


def _inside_jit() -> bool:
    return isinstance(jnp.asarray(1) + 1, jax.core.Tracer)


def assert_dce(
    x: PyTree,
    msg: str,
    *,
    on_error: Literal["default", "raise", "breakpoint", "off", "nan"] = "default",
) -> PyTree:
    """Asserts that the compiler removes `x` as dead code: inside `jit`, a run-time
    error (`msg`) fires if the returned value is actually used. Outside `jit` nothing
    is removed, so nothing is checked.

    **Arguments:**

    - `x`: any PyTree containing arrays.
    - `msg`: the error message if `x` survives.
    - `on_error`: as for [`ecliptic.error_if`][].

    **Returns:** `x`, unchanged.
    """
    if not _inside_jit():
        return x
    # A predicate that is `True` only at run time, so nothing fires while tracing.
    return error_if(x, jnp.invert(jnp.asarray(False)), msg, on_error=on_error)


announce_jaxpr_p: Any = _announce_p
"""The primitive behind [`ecliptic.debug.announce_transform`][]."""
