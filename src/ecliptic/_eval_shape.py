"""`filter_eval_shape`: the output shapes of a function, for any Python inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import PyTree

from ._filters import combine, partition
from ._module import Static
from ._wrap import api_boundary, is_struct


@api_boundary
def filter_eval_shape(fun: Callable[..., Any], *args: Any, **kwargs: Any) -> PyTree:
    """As `jax.eval_shape`, but the inputs and output may be any Python objects.

    Nothing is computed: `fun` is traced with abstract values. Array leaves of the
    inputs (and of `fun` itself, if it is a PyTree such as a Module) and
    `jax.ShapeDtypeStruct` leaves are traced; every other leaf is passed through
    unchanged. A common use is building a `like` tree for deserialisation:
    `filter_eval_shape(Model, key=key)`.

    **Arguments:**

    - `fun`: the function to evaluate, called as `fun(*args, **kwargs)`.
    - `*args`, `**kwargs`: its arguments: arrays, `jax.ShapeDtypeStruct`s or anything
        else.

    **Returns:** the output of `fun`, with every array replaced by a
    `jax.ShapeDtypeStruct` and every other leaf as `fun` returned it.
    """
    dynamic, static = partition((fun, args, kwargs), is_struct)

    def _fn(_dynamic):
        _fun, _args, _kwargs = combine(_dynamic, static)
        dynamic_out, static_out = partition(_fun(*_args, **_kwargs), is_struct)
        return dynamic_out, Static(static_out)

    dynamic_out, static_out = jax.eval_shape(_fn, dynamic)
    return combine(dynamic_out, static_out.value)
