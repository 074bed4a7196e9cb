"""Identity functions that forbid a transformation: `nondifferentiable`,
`nondifferentiable_backward`, `nonbatchable` and `nontraceable`.

Each applies to the array leaves of any PyTree (other leaves pass through) and is the
identity when the forbidden transformation does not happen. They are ordinary JAX
primitives (or, for `nondifferentiable`, a `jax.custom_jvp`): their lowering is the
identity, so `jit` is always fine.
"""

from __future__ import annotations

import functools as ft
from typing import Any

import jax
import jax.extend.core
import jax.interpreters.ad as ad
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import PyTree

from .. import _messages
from .._errors import error_if
from .._filters import combine, is_array, partition


def _map_arrays(fn: Any, x: PyTree) -> PyTree:
    dynamic, static = partition(x, is_array)
    return combine(jtu.tree_map(fn, dynamic), static)


def _identity(x, **params):
    del params
    return x


def _identity_primitive(name: str) -> jax.extend.core.Primitive:
    """A one-operand primitive that returns its operand (evaluation and lowering)."""
    prim = jax.extend.core.Primitive(name)
    prim.def_impl(_identity)
    prim.def_abstract_eval(_identity)
    mlir.register_lowering(prim, mlir.lower_fun(_identity, multiple_results=False))
    return prim


# ---------------------------------------------------------------------------------
# nontraceable: no transformation at all.
# ---------------------------------------------------------------------------------

nontraceable_p = _identity_primitive("ecliptic_nontraceable")


def _refuse(what: str):
    def rule(*args, name, **kwargs):
        del args, kwargs
        raise _messages.nontraceable_error(what, name)

    return rule


ad.primitive_jvps[nontraceable_p] = _refuse("differentiation")
ad.primitive_transposes[nontraceable_p] = _refuse("transposition")
batching.primitive_batchers[nontraceable_p] = _refuse("batching")


def nontraceable(x: PyTree, *, name: str = "nontraceable operation") -> PyTree:
    """Identity function that raises a `RuntimeError` if any JAX transformation
    (`jax.grad`, `jax.jvp`, `jax.vmap`, ...) reaches it. `jit` is allowed.

    Useful at the end of the `impl` rule of a higher-order primitive, to check that no
    tracer was captured by closure.

    **Arguments:**

    - `x`: any PyTree; its array leaves are watched.
    - `name`: what to call the operation in the error message.

    **Returns:** `x`, unchanged.
    """
    return _map_arrays(ft.partial(nontraceable_p.bind, name=name), x)


# ---------------------------------------------------------------------------------
# nondifferentiable: no forward or reverse mode.
# ---------------------------------------------------------------------------------


@ft.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _no_tangent(msg: str, x: Any) -> Any:
    return x


@_no_tangent.defjvp
def _no_tangent_jvp(msg: str, primals: Any, tangents: Any) -> Any:
    del primals, tangents
    raise RuntimeError(msg)


def nondifferentiable(
    x: PyTree, *, name: str | None = None, msg: str | None = None
) -> PyTree:
    """Identity function that raises a `RuntimeError` if it is differentiated, in
    forward or reverse mode.

    **Arguments:**

    - `x`: any PyTree; its array leaves must not be differentiated.
    - `name`: what to call the operation in the default message.
    - `msg`: the whole error message (overrides `name`).

    **Returns:** `x`, unchanged.
    """
    if msg is None:
        msg = _messages.nondifferentiable_message(name)
    dynamic, static = partition(x, is_array)
    return combine(_no_tangent(msg, dynamic), static)


# ---------------------------------------------------------------------------------
# nondifferentiable_backward: forward mode allowed, reverse mode not.
# ---------------------------------------------------------------------------------

nondifferentiable_backward_p = _identity_primitive(
    "ecliptic_nondifferentiable_backward"
)


def _backward_jvp(primals, tangents, *, msg, symbolic):
    bind = ft.partial(nondifferentiable_backward_p.bind, msg=msg, symbolic=symbolic)
    (x,), (t,) = primals, tangents
    if type(t) is ad.Zero:
        return bind(x), t
    return bind(x), bind(t)


def _backward_transpose(ct, x, *, msg, symbolic):
    del x
    if type(ct) is ad.Zero:
        return [None]
    if symbolic:
        raise RuntimeError(msg)
    # A cotangent of zeros that is not symbolic can be legitimate (e.g. a `lax.cond`
    # returning this value unused), so only a nonzero one fails, at run time.
    return [error_if(ct, jnp.any(ct != 0), msg)]


def _backward_batch(values, dims, *, msg, symbolic):
    out = nondifferentiable_backward_p.bind(values[0], msg=msg, symbolic=symbolic)
    return out, dims[0]


ad.primitive_jvps[nondifferentiable_backward_p] = _backward_jvp
ad.primitive_transposes[nondifferentiable_backward_p] = _backward_transpose
batching.primitive_batchers[nondifferentiable_backward_p] = _backward_batch


def nondifferentiable_backward(
    x: PyTree,
    name: str | None = None,
    msg: str | None = None,
    symbolic: bool = True,
) -> PyTree:
    """Identity function that raises an error if it is differentiated in reverse mode
    (`jax.grad`, `jax.vjp`). Forward mode (`jax.jvp`) and `vmap` are fine.

    **Arguments:**

    - `x`: any PyTree; its array leaves must not receive a cotangent.
    - `name`: what to call the operation in the default message.
    - `msg`: the whole error message (overrides `name`).
    - `symbolic`: if `True`, any cotangent that is not a symbolic zero raises a
        `RuntimeError` at trace time. If `False`, a run-time check (`error_if`) fails
        only when the cotangent has a nonzero element.

    **Returns:** `x`, unchanged.
    """
    if msg is None:
        msg = _messages.nondifferentiable_backward_message(name)
    bind = ft.partial(nondifferentiable_backward_p.bind, msg=msg, symbolic=symbolic)
    return _map_arrays(bind, x)


# ---------------------------------------------------------------------------------
# nonbatchable: no vmap (or only a batch of equal values).
# ---------------------------------------------------------------------------------

nonbatchable_p = _identity_primitive("ecliptic_nonbatchable")


def _nonbatchable_batch(values, dims, *, msg, allow_constant_across_batch):
    (x,), (axis,) = values, dims
    if axis is None:
        return x, None
    if not allow_constant_across_batch:
        raise ValueError(msg)
    x = error_if(x, jnp.min(x, axis=axis) != jnp.max(x, axis=axis), msg)
    return jnp.take(x, 0, axis=axis), None


def _nonbatchable_jvp(primals, tangents, **params):
    del primals, tangents, params
    raise _messages.nonbatchable_jvp_error()


batching.primitive_batchers[nonbatchable_p] = _nonbatchable_batch
ad.primitive_jvps[nonbatchable_p] = _nonbatchable_jvp


def nonbatchable(
    x: PyTree,
    *,
    name: str | None = None,
    msg: str | None = None,
    allow_constant_across_batch: bool = False,
) -> PyTree:
    """Identity function that raises a `ValueError` at trace time if it is batched by
    `vmap`.

    **Arguments:**

    - `x`: any PyTree; its array leaves must not be batched.
    - `name`: what to call the operation in the default message.
    - `msg`: the whole error message (overrides `name`).
    - `allow_constant_across_batch`: if `True`, a batched value is allowed when every
        batch element holds the same value; it is unbatched (a run-time check, via
        `error_if`, fails otherwise).

    **Returns:** `x`, unchanged (unbatched).
    """
    if msg is None:
        msg = _messages.nonbatchable_message(name, allow_constant_across_batch)
    bind = ft.partial(
        nonbatchable_p.bind,
        msg=msg,
        allow_constant_across_batch=allow_constant_across_batch,
    )
    return _map_arrays(bind, x)
