"""`filter_make_jaxpr`: the jaxpr of a function whose inputs and outputs may be any
Python objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.tree_util as jtu

from ._filters import combine, is_array, partition
from ._module import Module, module_update_wrapper, Static
from ._wrap import api_boundary, is_struct


class _MakeJaxpr(Module):
    fn: Callable

    @property
    def __wrapped__(self) -> Callable:
        return self.fn

    @api_boundary
    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
        dynamic, static = partition((args, kwargs), is_struct)
        flat, treedef = jtu.tree_flatten(dynamic)

        def _fn(*_flat):
            _args, _kwargs = combine(jtu.tree_unflatten(treedef, _flat), static)
            out_dynamic, out_static = partition(self.fn(*_args, **_kwargs), is_array)
            return out_dynamic, Static(out_static)

        jaxpr, (out_struct, out_static) = jax.make_jaxpr(_fn, return_shape=True)(*flat)
        return jaxpr, out_struct, out_static.value


def filter_make_jaxpr(fun: Callable[..., Any]) -> Callable[..., tuple[Any, Any, Any]]:
    """As `jax.make_jaxpr`, but the inputs and outputs may be any Python objects.

    Leaves with `.shape` and `.dtype` (JAX/NumPy arrays, `jax.ShapeDtypeStruct`) are
    traced; everything else, Python `bool`/`int`/`float`/`complex` included, is
    static (wrap a scalar in `jnp.asarray` to trace it).

    **Arguments:**

    - `fun`: the function, called as `fun(*args, **kwargs)`; may return anything.

    **Returns:** a function of the same arguments, returning a 3-tuple
    `(closed_jaxpr, out_struct, out_static)`: the `ClosedJaxpr` of `fun` on those
    arguments, a PyTree of `jax.ShapeDtypeStruct` for the array outputs (`None` at
    non-array leaves), and the non-array outputs (`None` at array leaves).
    """
    return module_update_wrapper(_MakeJaxpr(fun))
