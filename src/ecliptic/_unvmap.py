"""Reductions that see through `vmap`: `unvmap_any`, `unvmap_all`, `unvmap_max`.

Each reduces an array of any shape to a scalar. Under `vmap` they reduce over the
batch axis too and return an *unbatched* scalar, so that a `lax.cond` on the result
stays a real branch (a batched predicate would turn it into a `select` that runs both
sides). `error_if` uses them to decide whether any batch element failed, and
`ecliptic.debug.breakpoint_if` whether any batch element asks for the debugger.

They are JAX primitives: a batching rule that drops the batch dimension, and a
lowering that is the plain reduction.
"""

from collections.abc import Callable

import jax
import jax.core
import jax.extend.core
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool


def _make_primitive(
    name: str, reduce: Callable[[Array], Array], to_bool: bool
) -> jax.extend.core.Primitive:
    """A primitive computing `reduce(x)` (a scalar) that ignores `vmap`."""
    prim = jax.extend.core.Primitive(name)

    def abstract_eval(x: jax.core.ShapedArray) -> jax.core.ShapedArray:
        return jax.core.ShapedArray((), jnp.bool_ if to_bool else x.dtype)

    def batch(args: tuple, dims: tuple) -> tuple:
        del dims  # the reduction covers the batch axis as well
        return prim.bind(args[0]), None  # None: the output is not batched

    prim.def_impl(reduce)
    prim.def_abstract_eval(abstract_eval)
    batching.primitive_batchers[prim] = batch
    mlir.register_lowering(prim, mlir.lower_fun(reduce, multiple_results=False))
    return prim


unvmap_any_p = _make_primitive("ecliptic_unvmap_any", jnp.any, to_bool=True)
unvmap_all_p = _make_primitive("ecliptic_unvmap_all", jnp.all, to_bool=True)
unvmap_max_p = _make_primitive("ecliptic_unvmap_max", jnp.max, to_bool=False)


def unvmap_any(x: Bool[ArrayLike, "..."]) -> Bool[Array, ""]:
    """Whether any element of `x` is `True`, across every `vmap` batch as well.

    **Arguments:**

    - `x`: a boolean array (or Python bool) of any shape `(...)`.

    **Returns:** an unbatched boolean scalar, shape `()`.
    """
    return unvmap_any_p.bind(jnp.asarray(x))


def unvmap_all(x: Bool[ArrayLike, "..."]) -> Bool[Array, ""]:
    """Whether every element of `x` is `True`, across every `vmap` batch as well.

    **Arguments:**

    - `x`: a boolean array (or Python bool) of any shape `(...)`.

    **Returns:** an unbatched boolean scalar, shape `()`.
    """
    return unvmap_all_p.bind(jnp.asarray(x))


def unvmap_max(x: ArrayLike) -> Array:
    """The largest element of `x`, across every `vmap` batch as well.

    **Arguments:**

    - `x`: a non-empty numeric array of any shape `(...)`.

    **Returns:** an unbatched scalar of `x`'s dtype, shape `()`.
    """
    return unvmap_max_p.bind(jnp.asarray(x))
