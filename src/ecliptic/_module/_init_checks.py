"""The checks that run once a Module's `__init__` has returned: every field set, no
undeclared attribute, converters applied, field warnings, `__check_init__` (see
`_module.py` for when they run). The messages of the mistakes found while
constructing are in `_messages.py`."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.tree_util as jtu

from .._filters import is_array, is_inexact_array_like
from .._messages import (
    init_false_array_message,
    static_array_message,
    transformed_callable_message,
    undeclared_field_error,
    uninitialised_field_error,
)
from ._class_info import ClassInfo
from ._flatten import WRAPPER_FIELD_NAMES


# Types of the callables that `jax` transformations return: a field holding one may
# hide parameters from the PyTree (see `warn_transformed`).
TRANSFORM_TYPES: frozenset[type] = frozenset(
    type(transform(lambda x: x))
    for transform in (
        jax.jit,
        jax.grad,
        jax.vmap,
        jax.value_and_grad,
        jax.jacfwd,
        jax.jacrev,
        jax.hessian,
        jax.custom_jvp,
        jax.custom_vjp,
        jax.checkpoint,
    )
)

_setattr = object.__setattr__


def check_assigned_names(cls: type, info: ClassInfo, obj: Any) -> None:
    """Raises if `__init__` assigned an attribute that is not a declared field."""
    for name in obj.__dict__:
        if name not in info.names_set and name not in WRAPPER_FIELD_NAMES:
            if name == "__orig_class__":
                continue
            raise undeclared_field_error(cls.__qualname__, name)


def _warn_static_and_init_false(cls: type, info: ClassInfo, obj: Any) -> None:
    for name in info.static:
        value = getattr(obj, name)
        if any(is_array(x) for x in jtu.tree_leaves(value)):
            warnings.warn(static_array_message(cls.__qualname__, name), stacklevel=3)
    for name in info.init_false:
        value = getattr(obj, name, None)
        if any(is_inexact_array_like(x) for x in jtu.tree_leaves(value)):
            warnings.warn(
                init_false_array_message(cls.__qualname__, name), stacklevel=3
            )


def finish_init(cls: type, info: ClassInfo, obj: Any) -> None:
    """Runs after `__init__`: fields set, converters, warnings, `__check_init__`."""
    d = obj.__dict__
    if not d.keys() >= info.names_set:
        for name in info.names:
            if name not in d and not hasattr(cls, name):
                raise uninitialised_field_error(cls.__qualname__, name)
    if not info.needs_post_init:
        return
    for name, converter in info.converters:
        _setattr(obj, name, converter(getattr(obj, name)))
    if info.static or info.init_false:
        _warn_static_and_init_false(cls, info, obj)
    for check in info.check_inits:
        check(obj)


def warn_transformed(cls: type, name: str, value: Any) -> None:
    """Warns if `value`, a JAX-transformed callable, wraps something that holds
    parameters (which would then be invisible to the Module's PyTree)."""
    inner = value
    while True:
        inner = getattr(inner, "__wrapped__", None)
        if inner is None:
            return
        try:
            leaves = jtu.tree_leaves(inner)
        except Exception:  # noqa: BLE001 - any non-PyTree callable: nothing to warn about
            return
        if any(is_array(x) or isinstance(x, (int, float, complex)) for x in leaves):
            warnings.warn(transformed_callable_message(cls, name), stacklevel=3)
            return
