"""`filter_pure_callback`: call Python from inside a traced region, with any Python
objects as inputs and outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import PyTree

from ._filters import combine, is_array, partition
from ._messages import pure_callback_static_error
from ._wrap import api_boundary, static_equal


def _has_shape_dtype(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


@api_boundary
def filter_pure_callback(
    callback: Callable[..., Any],
    *args: Any,
    result_shape_dtypes: PyTree,
    sharding: Any = None,
    vmap_method: str | None = None,
    vectorized: bool | None = None,
    **kwargs: Any,
) -> PyTree:
    """As `jax.pure_callback`, but the inputs and outputs may be any Python objects.

    Array leaves of `args`/`kwargs` are passed to `callback` as NumPy arrays; every
    other leaf is passed unchanged.

    **Arguments:**

    - `callback`: the Python function, called as `callback(*args, **kwargs)`.
    - `*args`, `**kwargs`: its arguments, any Python objects.
    - `result_shape_dtypes`: the expected output: a PyTree with a
        `jax.ShapeDtypeStruct` (or array) for every array output and the exact value
        of every non-array output. Keyword-only.
    - `sharding`: optional sharding of the device that runs the callback.
    - `vmap_method`, `vectorized`: how the callback behaves under `jax.vmap`, as in
        `jax.pure_callback`.

    **Returns:** the output of `callback`, usable inside `jax.jit`.
    """
    dynamic, static = partition((args, kwargs), is_array)
    dynamic_struct, static_struct = partition(result_shape_dtypes, _has_shape_dtype)

    def _callback(_dynamic):
        _args, _kwargs = combine(_dynamic, static)
        out = callback(*_args, **_kwargs)
        dynamic_out, static_out = partition(out, is_array)
        if not static_equal(static_out, static_struct):
            raise pure_callback_static_error(static_struct, static_out)
        return dynamic_out

    options: dict[str, Any] = {}
    if sharding is not None:
        options["sharding"] = sharding
    if vectorized is not None:
        options["vectorized"] = vectorized
    if vmap_method is not None:
        options["vmap_method"] = vmap_method
    dynamic_out = jax.pure_callback(_callback, dynamic_struct, dynamic, **options)
    return combine(dynamic_out, static_struct)
