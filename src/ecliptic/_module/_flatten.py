"""Fast flatten / unflatten functions, generated once per Module class.

A Module flattens into its dynamic fields (the children, in declaration order) and a
tuple of its static fields (the auxiliary data, compared and hashed by JAX). Unflatten
builds the instance with `object.__new__` and fills its `__dict__` directly: no
`__init__`, converter or `__check_init__` runs.

The generated code reads `instance.__dict__[name]` for speed. Two rarer cases take a
slow path: a field that was never assigned on the instance (its class default is then
used, and it flattens to an empty `MISSING` node), and wrapper attributes set by
`module_update_wrapper` (`__name__`, `__doc__`, ...), which travel in the aux data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.tree_util as jtu


WRAPPER_FIELD_NAMES = (
    "__module__",
    "__name__",
    "__qualname__",
    "__doc__",
    "__annotations__",
)


class _Missing:
    """Placeholder for a field that is not set on the instance. An empty PyTree."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # typed `Any`: also the default of typed arguments
jtu.register_pytree_node(_Missing, lambda _: ((), None), lambda _, __: MISSING)


class _SlowAux(tuple):
    """Aux data of the slow path: `(static_values, missing_names, wrapper_items)`."""

    __slots__ = ()


def _slow_flatten(dynamic: tuple[str, ...], static: tuple[str, ...], obj: Any):
    d = obj.__dict__
    missing = tuple(n for n in dynamic + static if n not in d)
    children = tuple(d.get(n, MISSING) for n in dynamic)
    static_values = tuple(d.get(n, MISSING) for n in static)
    wrapper = tuple((n, d[n]) for n in WRAPPER_FIELD_NAMES if n in d)
    return children, _SlowAux((static_values, missing, wrapper))


def _slow_unflatten(
    cls: type, dynamic: tuple[str, ...], static: tuple[str, ...], aux, children
):
    static_values, missing, wrapper = aux
    obj = object.__new__(cls)
    d = obj.__dict__
    for name, value in zip(dynamic, children):
        if name not in missing:
            d[name] = value
    for name, value in zip(static, static_values):
        if name not in missing:
            d[name] = value
    for name, value in wrapper:
        d[name] = value
    return obj


def _unpack_target(names: tuple[str, ...]) -> str:
    return "".join(f"d[{n!r}], " for n in names)


def make_flatten_functions(
    cls: type, dynamic: tuple[str, ...], static: tuple[str, ...], wrapper: bool
) -> tuple[Callable, Callable, Callable]:
    """Generates `(flatten, flatten_with_keys, unflatten)` for `cls`.

    **Arguments:**

    - `cls`: the Module class.
    - `dynamic`: names of the fields that are PyTree children, in order.
    - `static`: names of the `static=True` fields, in order.
    - `wrapper`: whether instances may carry `module_update_wrapper` attributes
        (classes with a `__wrapped__` property); their flatten checks for them.

    **Returns:** the three functions for `jax.tree_util.register_pytree_with_keys`.
    """
    n_fields = len(dynamic) + len(static)
    wrapper_check = (
        f"    if len(d) != {n_fields}:\n        return _slow(obj)\n" if wrapper else ""
    )
    set_children = f"    {_unpack_target(dynamic)}= c\n" if dynamic else ""
    set_static = f"    {_unpack_target(static)}= a\n" if static else ""
    src = f"""
def flatten(obj):
    d = obj.__dict__
{wrapper_check}    try:
        return ({_unpack_target(dynamic)}), ({_unpack_target(static)})
    except KeyError:
        return _slow(obj)

def flatten_with_keys(obj):
    children, aux = flatten(obj)
    return tuple(zip(_keys, children)), aux

def unflatten(a, c):
    if a.__class__ is _SlowAux:
        return _slow_unflatten(_cls, _dynamic, _static, a, c)
    obj = _new(_cls)
    d = obj.__dict__
{set_children}{set_static}    return obj
"""
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_dynamic": dynamic,
        "_static": static,
        "_new": object.__new__,
        "_SlowAux": _SlowAux,
        "_slow_unflatten": _slow_unflatten,
        "_slow": lambda obj: _slow_flatten(dynamic, static, obj),
        "_keys": tuple(jtu.GetAttrKey(n) for n in dynamic),
    }
    exec(compile(src, f"<ecliptic flatten {cls.__qualname__}>", "exec"), namespace)
    return namespace["flatten"], namespace["flatten_with_keys"], namespace["unflatten"]
