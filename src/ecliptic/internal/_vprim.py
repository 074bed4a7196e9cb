"""`create_vprim`: a primitive whose batching rule is derived, not written.

The primitive's `impl`, abstract evaluation, JVP and transpose rules are ordinary JAX
code, so `jax.vmap` can batch them. Under `vmap` a vprim binds the helper primitive
`vprim` (itself a vprim, so nested `vmap`s work), carrying the original primitive,
the batch size and axis, and the original parameters. Each rule of `vprim` is the
matching rule of the original primitive under `jax.vmap`. Batched values always come
out on axis 0.
"""

from __future__ import annotations

import dataclasses
import functools as ft
from collections.abc import Callable
from typing import Any

import jax
import jax.core
import jax.extend.core
import jax.interpreters.ad as ad
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.numpy as jnp

from .. import _messages


@dataclasses.dataclass(frozen=True)
class _Rules:
    impl: Callable
    abstract_eval: Callable
    jvp: Callable
    transpose: Callable


# Primitive -> its rules. A registry, not a cache: a compiled program may bind a vprim
# at any time, so an entry lives as long as the process (one per `create_vprim` call).
_RULES: dict[jax.extend.core.Primitive, _Rules] = {}


def _register_axis_batcher(prim: jax.extend.core.Primitive, rule: Callable) -> None:
    """Registers `rule(axis_size, axis_name, values, dims, **params)` as the batching
    rule of `prim` (the rule needs the size and name of the batch axis)."""
    fancy = getattr(batching, "fancy_primitive_batchers", None)
    if fancy is not None:

        def _fancy(axis_data, values, dims, /, **params):
            return rule(axis_data.size, axis_data.name, values, dims, **params)

        fancy[prim] = _fancy
    else:  # older JAX

        def _axis(size, name, _trace_type, values, dims, /, **params):
            return rule(size, name, values, dims, **params)

        batching.axis_primitive_batchers[prim] = _axis


def _batch(prim, axis_size, axis_name, values, dims, /, **params):
    if all(d is None for d in dims):
        out = prim.bind(*values, **params)
        return out, [None] * len(out)
    out = vprim_p.bind(
        *values,
        prim=prim,
        axis_size=axis_size,
        axis_name=axis_name,
        batch_axes=tuple(dims),
        params=tuple(params.items()),
    )
    return out, [0] * len(out)


def create_vprim(
    name: str,
    impl: Callable,
    abstract_eval: Callable,
    jvp: Callable,
    transpose: Callable,
) -> jax.extend.core.Primitive:
    """Creates a primitive (with `multiple_results = True`) whose batching rule is
    derived automatically by `vmap`-ing its other rules.

    **Arguments:**

    - `name`: the primitive's name.
    - `impl`: `impl(*inputs, **params) -> list of outputs`, in JAX operations (it is
        also the lowering).
    - `abstract_eval`: `abstract_eval(*avals, **params) -> list of ShapedArrays`.
    - `jvp`: `jvp(primals, tangents, **params) -> (primals_out, tangents_out)`, as in
        `jax.interpreters.ad.primitive_jvps`.
    - `transpose`: `transpose(cts, *inputs, **params) -> cotangents`, as in
        `jax.interpreters.ad.primitive_transposes`.

    **Returns:** the new `jax.extend.core.Primitive`.
    """
    prim = jax.extend.core.Primitive(name)
    prim.multiple_results = True
    prim.def_impl(impl)
    prim.def_abstract_eval(abstract_eval)
    ad.primitive_jvps[prim] = jvp
    ad.primitive_transposes[prim] = transpose
    _register_axis_batcher(prim, ft.partial(_batch, prim))
    mlir.register_lowering(prim, mlir.lower_fun(impl, multiple_results=True))
    _RULES[prim] = _Rules(impl, abstract_eval, jvp, transpose)
    return prim


def _drop_axis(aval: Any, axis: int | None) -> Any:
    if axis is None:
        return aval
    if not isinstance(aval, jax.core.ShapedArray):
        raise _messages.vprim_zero_error(aval)
    shape = aval.shape[:axis] + aval.shape[axis + 1 :]
    return aval.update(shape=shape)


def _add_axis(aval: Any, size: int) -> Any:
    return aval.update(shape=(size,) + tuple(aval.shape))


def _vmap(fn: Callable, size: int, name: Any, in_axes: Any, out_axes: Any = 0):
    return jax.vmap(
        fn, in_axes=in_axes, out_axes=out_axes, axis_size=size, axis_name=name
    )


def _vprim_impl(*inputs, prim, axis_size, axis_name, batch_axes, params):
    impl = ft.partial(_RULES[prim].impl, **dict(params))
    return _vmap(impl, axis_size, axis_name, batch_axes)(*inputs)


def _vprim_abstract_eval(*avals, prim, axis_size, axis_name, batch_axes, params):
    del axis_name
    inner = [_drop_axis(a, b) for a, b in zip(avals, batch_axes)]
    outs = _RULES[prim].abstract_eval(*inner, **dict(params))
    return [_add_axis(o, axis_size) for o in outs]


def _vprim_jvp(primals, tangents, *, prim, axis_size, axis_name, batch_axes, params):
    tangents = [
        ad.Zero(_drop_axis(t.aval, b)) if type(t) is ad.Zero else t
        for t, b in zip(tangents, batch_axes)
    ]
    t_axes = [None if type(t) is ad.Zero else b for t, b in zip(tangents, batch_axes)]
    jvp = ft.partial(_RULES[prim].jvp, **dict(params))
    in_axes = (list(batch_axes), t_axes)
    p_out, t_out = _vmap(jvp, axis_size, axis_name, in_axes)(
        list(primals), list(tangents)
    )
    # Symbolic zeros cross `vmap` unchanged: give them the batched shape.
    t_out = [
        ad.Zero(_add_axis(t.aval, axis_size)) if type(t) is ad.Zero else t
        for t in t_out
    ]
    return p_out, t_out


def _vprim_transpose(cts, *inputs, prim, axis_size, axis_name, batch_axes, params):
    undefined = [ad.is_undefined_primal(x) for x in inputs]
    inner = [
        ad.UndefinedPrimal(_drop_axis(x.aval, b)) if u else x
        for x, u, b in zip(inputs, undefined, batch_axes)
    ]
    in_axes = [None if u else b for u, b in zip(undefined, batch_axes)]
    out_axes = [0 if u else None for u in undefined]

    def _transpose(cts_, *inputs_):
        outs = _RULES[prim].transpose(cts_, *inputs_, **dict(params))
        # `Zero` is not an array: send `None` (no cotangent) across `vmap` instead.
        return [None if type(o) is ad.Zero else o for o in outs]

    cts = [None if type(c) is ad.Zero else c for c in cts]
    outs = _vmap(_transpose, axis_size, axis_name, (0, *in_axes), out_axes)(cts, *inner)
    results = []
    for ct, u, b in zip(outs, undefined, batch_axes):
        if ct is not None and u:
            # The cotangent is batched on axis 0; an unbatched input sums over it.
            ct = jnp.sum(ct, axis=0) if b is None else jnp.moveaxis(ct, 0, b)
        results.append(ct)
    return results


# `vprim` is itself a vprim, so nested `vmap`s batch it again.
vprim_p = create_vprim(
    "ecliptic_vprim", _vprim_impl, _vprim_abstract_eval, _vprim_jvp, _vprim_transpose
)
