"""Finalisation: a transformation that replaces custom primitives by what they compute.

Evaluating a jaxpr normally *binds* each primitive again. A finalising evaluation
instead calls a primitive's entry in `primitive_finalisations` where it has one
(usually its `impl` rule, which for the primitives of ecliptic is plain JAX code), so
the result is a program made of standard JAX operations only. That is what exporters
(e.g. ONNX) need, and it is a handy way to read what a custom primitive does.

Also inlined, to make the result simpler: `custom_jvp` calls (their primal function)
and `stop_gradient`. Do not apply other transformations (`grad`, `vmap`, ...) after
finalisation: custom rules are gone, so the result may be silently wrong.
"""

from __future__ import annotations

import functools as ft
import importlib.util
from collections.abc import Callable
from typing import Any

import jax
import jax.custom_derivatives
import jax.extend.core
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import PyTree

from .. import _messages
from .._unvmap import unvmap_all_p, unvmap_any_p, unvmap_max_p
from ._aliases import announce_jaxpr_p
from ._loop import maybe_set_p, select_if_vmap_p
from ._noinline import noinline_p
from ._nontraceable import (
    nonbatchable_p,
    nondifferentiable_backward_p,
    nontraceable_p,
)


# Primitive -> function called with the equation's operands and parameters instead of
# binding the primitive. A registry (one entry per registered primitive), not a cache.
primitive_finalisations: dict[jax.extend.core.Primitive, Callable] = {}


def register_impl_finalisation(prim: jax.extend.core.Primitive) -> None:
    """Makes finalisation replace `prim` by its `impl` rule.

    **Arguments:**

    - `prim`: a primitive whose `impl` rule is written in JAX operations.

    **Returns:** `None`.
    """
    primitive_finalisations[prim] = prim.impl


def _finalise_param(value: Any) -> Any:
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        return finalise_jaxpr(value)
    if isinstance(value, jax.extend.core.Jaxpr) and not value.constvars:
        return finalise_jaxpr(jax.extend.core.ClosedJaxpr(value, [])).jaxpr
    return value


def _finalise_params(params: dict) -> dict:
    # Only plain tuples are walked into (a namedtuple is kept whole).
    return {
        k: tuple(map(_finalise_param, v)) if type(v) is tuple else _finalise_param(v)
        for k, v in params.items()
    }


def _call_of(eqn: Any) -> tuple[Callable, list, dict]:
    """How to evaluate one equation: the function, its leading sub-functions and its
    keyword parameters."""
    params = _finalise_params(eqn.params)
    bind_params = eqn.primitive.get_bind_params(params)
    if isinstance(bind_params, tuple):  # older JAX: (subfuns, params)
        subfuns, bind_params = bind_params
    else:
        subfuns = []
    call = primitive_finalisations.get(eqn.primitive)
    if call is None:
        call = eqn.primitive.bind
    return call, list(subfuns), bind_params


def finalise_eval_jaxpr(jaxpr: jax.extend.core.Jaxpr, consts: Any, *args: Any) -> list:
    """As `jax.core.eval_jaxpr`, but finalising: primitives with an entry in
    `primitive_finalisations` are replaced by it.

    **Arguments:**

    - `jaxpr`: an open `Jaxpr`.
    - `consts`: values for its `constvars`.
    - `*args`: values for its `invars`.

    **Returns:** the list of output values.
    """
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jax.extend.core.Literal) else env[v]

    for var, val in zip(jaxpr.constvars, consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.invars, args, strict=True):
        env[var] = val
    for eqn in jaxpr.eqns:
        call, subfuns, params = _call_of(eqn)
        out = call(*subfuns, *map(read, eqn.invars), **params)
        outs = out if eqn.primitive.multiple_results else [out]
        for var, val in zip(eqn.outvars, outs, strict=True):
            env[var] = val
    return [read(v) for v in jaxpr.outvars]


def finalise_jaxpr_as_fn(jaxpr: jax.extend.core.ClosedJaxpr) -> Callable[..., list]:
    """As `jax.core.jaxpr_as_fn`, finalising.

    **Arguments:**

    - `jaxpr`: a `ClosedJaxpr`.

    **Returns:** a function of the jaxpr's inputs (flat) returning its outputs (list).
    """
    return ft.partial(finalise_eval_jaxpr, jaxpr.jaxpr, jaxpr.consts)


def finalise_jaxpr(jaxpr: jax.extend.core.ClosedJaxpr) -> jax.extend.core.ClosedJaxpr:
    """Finalises a jaxpr: the same computation, with every registered primitive
    replaced.

    **Arguments:**

    - `jaxpr`: a `ClosedJaxpr`.

    **Returns:** a new `ClosedJaxpr` with the same inputs and outputs.
    """
    structs = [
        jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in jaxpr.jaxpr.invars
    ]
    return jax.make_jaxpr(finalise_jaxpr_as_fn(jaxpr))(*structs)


def finalise_fn(fn: Callable) -> Callable:
    """Wraps `fn` so that it runs finalised (in the way `jax.vmap` wraps a function to
    run batched).

    **Arguments:**

    - `fn`: a function of PyTrees of arrays, returning a PyTree of arrays.

    **Returns:** a function with the same inputs and outputs.
    """

    def finalised(*args: Any) -> PyTree:
        jaxpr, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = finalise_eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *jtu.tree_leaves(args))
        return jtu.tree_unflatten(jtu.tree_structure(out_shape), out)

    return finalised


def finalise_make_jaxpr(fn: Callable, *, return_shape: bool = False) -> Callable:
    """As `jax.make_jaxpr`, finalising the result.

    **Arguments:**

    - `fn`: the function to trace.
    - `return_shape`: if `True`, also return the output's shapes (as `jax.make_jaxpr`).

    **Returns:** a function of `fn`'s arguments returning the finalised `ClosedJaxpr`
    (and, with `return_shape`, a PyTree of `jax.ShapeDtypeStruct`).
    """

    def make(*args: Any) -> Any:
        if return_shape:
            jaxpr, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
            return finalise_jaxpr(jaxpr), shape
        return finalise_jaxpr(jax.make_jaxpr(fn)(*args))

    return make


def _custom_jvp_call(*args: Any, subfuns: Any = None, **params: Any) -> Any:
    del params
    if subfuns is None:  # older JAX: (fun, jvp, *operands)
        fun, args = args[0], args[2:]
    else:
        fun = subfuns[0]
    return fun.call_wrapped(*args)


def _stop_gradient(x: Any) -> Any:
    return x


for _prim in (
    unvmap_all_p,
    unvmap_any_p,
    unvmap_max_p,
    announce_jaxpr_p,
    noinline_p,
    nontraceable_p,
    nonbatchable_p,
    nondifferentiable_backward_p,
    maybe_set_p,
    select_if_vmap_p,
):
    register_impl_finalisation(_prim)
primitive_finalisations[jax.custom_derivatives.custom_jvp_call_p] = _custom_jvp_call
primitive_finalisations[jax.lax.stop_gradient_p] = _stop_gradient


_ONNX_DEPENDENCIES = ("tensorflow", "tf2onnx", "jax.experimental.jax2tf")


def _missing(modules: tuple[str, ...]) -> list[str]:
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # the parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def to_onnx(fn: Callable) -> Callable:
    """Exports a JAX function to ONNX (experimental: may change or be removed).

    Needs `tensorflow` and `tf2onnx` (and `jax.experimental.jax2tf`); without them
    this raises an `ImportError` naming the missing packages.

    **Arguments:**

    - `fn`: a function of arrays, returning arrays.

    **Returns:** a function of example arguments (arrays) returning the converted
    ONNX model (as `tf2onnx.convert.from_function` does).
    """
    missing = _missing(_ONNX_DEPENDENCIES)
    if missing:
        raise _messages.onnx_missing_error(missing)
    import jax.experimental.jax2tf as jax2tf
    import tensorflow as tf  # pyright: ignore[reportMissingImports, reportMissingModuleSource]
    import tf2onnx  # pyright: ignore[reportMissingImports]

    def convert(*args: Any) -> Any:
        tf_fn = tf.function(jax2tf.convert(finalise_fn(fn), enable_xla=False))
        signature = [tf.TensorSpec(jnp.shape(x), jnp.result_type(x)) for x in args]
        return tf2onnx.convert.from_function(tf_fn, input_signature=signature)

    return convert
