"""`noinline`: a sub-computation compiled once, on its own, and called from many places.

How it works:

- `noinline(fn)` splits `fn` (any callable PyTree) into its arrays and a hashable
  static part. The static part gets a number in a process-wide registry; the wrapper
  holds that number as an integer *array*, so two `noinline`d functions that share
  an `abstract_fn` can be swapped inside a compiled program without recompiling it.
- Calling the wrapper binds the filtered primitive `noinline_p` with the number, the
  `abstract_fn` (which gives the output shapes), a tuple of *stages* (see below) and
  the arguments.
- The primitive is lowered to a host callback which looks the function up by number
  and runs it through `jax.jit` (so it is compiled once per input signature, apart
  from the program that calls it).
- Transformations do not inline it either: each adds a stage. `jvp` binds a second
  `noinline_p` whose stages end with `_Jvp` (compute the tangent); transposition
  appends `_Transpose` (the transpose of that linear map); `vmap` appends `_Batch`.
  The stages are applied to the function at abstract evaluation and on the host.
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
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Int

from .. import _messages
from .._ad import filter_jvp
from .._caches import BoundedCache
from .._eval_shape import filter_eval_shape
from .._filters import combine, is_array, is_inexact_array, partition
from .._module import field, Module, module_update_wrapper
from .._vmap_pmap import filter_vmap
from ._misc import hashable_combine, hashable_partition
from ._primitive import (
    filter_primitive_batching,
    filter_primitive_bind,
    filter_primitive_def,
    filter_primitive_jvp,
    filter_primitive_transpose,
    rebuild_inputs,
)


# The registry of noinline'd functions: static part -> number, and number -> static
# part. Not a cache: a compiled program refers to a function by its number for as long
# as the program lives, so entries are never dropped (one per distinct function).
_NUMBER_OF: dict[Any, int] = {}
_FUNCTIONS: list[Any] = []
_DEFAULT_ABSTRACT: list[Callable] = []  # number -> the `abstract_fn` built from `fn`


def _is_undefined(x: Any) -> bool:
    return ad.is_undefined_primal(x)


def _is_none(x: Any) -> bool:
    return x is None


def _concrete_base(static_fn: Any) -> Callable:
    """`packed = (dynamic_fn, args, kwargs) -> fn(*args, **kwargs)`."""

    def run(packed):
        dynamic_fn, args, kwargs = packed
        return hashable_combine(dynamic_fn, static_fn)(*args, **kwargs)

    return run


def _abstract_base(abstract_fn: Callable) -> Callable:
    def run(packed):
        dynamic_fn, args, kwargs = packed
        return abstract_fn(dynamic_fn, *args, **kwargs)

    return run


def _apply_stages(fn: Callable, stages: tuple) -> Callable:
    for stage in stages:
        fn = stage.apply(fn)
    return fn


@dataclasses.dataclass(frozen=True)
class _Jvp:
    """`(packed, tangents) -> tangent of fn(packed)`; `tangents` has `None` where
    there is no tangent."""

    def apply(self, fn: Callable) -> Callable:
        def tangent(pair):
            packed, tangents = pair
            return filter_jvp(fn, (packed,), (tangents,))[1]

        return tangent


@dataclasses.dataclass(frozen=True)
class _Transpose:
    """`(defined, cts) -> cotangents of the undefined (linear) inputs`. The undefined
    inputs are described by `treedef` and `structs` (their shapes and dtypes)."""

    treedef: Any
    structs: tuple

    def apply(self, fn: Callable) -> Callable:
        def transposed(pair):
            defined, cts = pair
            undefined = jtu.tree_unflatten(self.treedef, self.structs)

            def linear(und):
                return fn(combine(defined, und))

            (ct_undefined,) = jax.linear_transpose(linear, undefined)(cts)
            return ct_undefined

        return transposed


@dataclasses.dataclass(frozen=True)
class _Batch:
    """Vectorises the function over the batch axes `axes` (one per leaf of its
    argument, `None` for unbatched; described by `treedef`)."""

    treedef: Any
    axes: tuple

    def apply(self, fn: Callable) -> Callable:
        in_axes = jtu.tree_unflatten(self.treedef, self.axes)
        return filter_vmap(fn, in_axes=(in_axes,))


def _to_struct(x: Any) -> Any:
    if isinstance(x, jax.core.ShapedArray):
        return jax.ShapeDtypeStruct(x.shape, x.dtype)
    return x


def _to_aval(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return jax.core.ShapedArray(x.shape, x.dtype)
    return x


def _noinline_impl(index, abstract_fn, stages, packed):
    del abstract_fn
    fn = _apply_stages(_concrete_base(_FUNCTIONS[int(index)]), stages)
    return fn(packed)


# Output shapes per (abstract function, stages, input shapes and static leaves). A
# miss traces the abstract function again (abstract evaluation only, no compile).
_ABSTRACT_CACHE_SIZE = 512
_abstract_cache = BoundedCache(_ABSTRACT_CACHE_SIZE)


def _noinline_abstract(index, abstract_fn, stages, packed):
    del index
    leaves, treedef = jtu.tree_flatten(packed)
    for x in leaves:
        if isinstance(x, jax.core.AbstractValue) and not isinstance(
            x, jax.core.ShapedArray
        ):
            raise _messages.noinline_abstract_error(x)
    key = (abstract_fn, stages, tuple(leaves), treedef)
    try:
        return _abstract_cache[key]
    except TypeError:  # an unhashable static argument: do not cache
        key = None
    except KeyError:
        pass
    fn = _apply_stages(_abstract_base(abstract_fn), stages)
    out = filter_eval_shape(fn, jtu.tree_map(_to_struct, packed))
    out = jtu.tree_map(_to_aval, out)
    if key is not None:
        _abstract_cache[key] = out
    return out


def _materialise(primal: Any, tangent: Any) -> Any:
    # Tangents only for floating arrays; integer inputs keep `None` (no tangent).
    if tangent is None and is_inexact_array(primal):
        return jnp.zeros(jnp.shape(primal), jnp.result_type(primal))
    return tangent


def _noinline_jvp(primals, tangents):
    index, abstract_fn, stages, packed = primals
    t_packed = tangents[3]
    t_packed = jtu.tree_map(_materialise, packed, t_packed, is_leaf=_is_none)
    out = filter_primitive_bind(noinline_p, index, abstract_fn, stages, packed)
    t_out = filter_primitive_bind(
        noinline_p, index, abstract_fn, stages + (_Jvp(),), (packed, t_packed)
    )
    return out, t_out


def _noinline_transpose(inputs, cts_out):
    index, abstract_fn, stages, packed = inputs
    undefined, defined = partition(packed, _is_undefined, is_leaf=_is_undefined)
    structs = jtu.tree_map(
        lambda u: jax.ShapeDtypeStruct(u.aval.shape, u.aval.dtype),
        undefined,
        is_leaf=_is_undefined,
    )
    s_leaves, s_treedef = jtu.tree_flatten(structs)
    stage = _Transpose(s_treedef, tuple(s_leaves))
    cts = filter_primitive_bind(
        noinline_p, index, abstract_fn, stages + (stage,), (defined, cts_out)
    )
    no_cts = jtu.tree_map(lambda _: None, (index, abstract_fn, stages))
    return no_cts + (cts,)


def _noinline_batch(inputs, batch_axes):
    index, abstract_fn, stages, packed = inputs
    if batch_axes[0] is not None:
        # A `lax.cond` with a batched predicate broadcasts the constants of its
        # branches, this number included; every entry is the same.
        index = jnp.take(index, 0, axis=batch_axes[0])
    leaves, treedef = jtu.tree_flatten(packed)
    axes = tuple(treedef.flatten_up_to(batch_axes[3]))
    stage = _Batch(treedef, axes)
    out = filter_primitive_bind(
        noinline_p, index, abstract_fn, stages + (stage,), packed
    )
    return out, jtu.tree_map(lambda x: 0 if is_array(x) else None, out)


# ---------------------------------------------------------------------------------
# Lowering: a host callback into a separately compiled function.
# ---------------------------------------------------------------------------------


class _Place:
    """Marks an operand's place among the static leaves of a lowered call."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{self.kind}>"


_ARRAY = _Place("array")
_FLOAT0 = _Place("float0")  # a float0 operand carries no data: made again on the host


@ft.partial(jax.jit, static_argnums=(0, 1))
def _compiled(static_fn: Any, layout: tuple, dynamic: list) -> list:
    """The noinline'd computation, compiled by `jax.jit` once per function, layout
    and input shapes (JAX's own cache; emptied by `jax.clear_caches`)."""
    treedef, static, float0_shapes = layout
    arrays = iter(dynamic)
    zeros = iter(np.zeros(shape, jax.dtypes.float0) for shape in float0_shapes)
    leaves = [
        next(arrays) if s is _ARRAY else next(zeros) if s is _FLOAT0 else s
        for s in static
    ]
    stages, packed = jtu.tree_unflatten(treedef, leaves)
    out = _apply_stages(_concrete_base(static_fn), stages)(packed)
    return [x for x in jtu.tree_leaves(out) if is_array(x)]


def _lowered(*operands, treedef, static, avals_out):
    index, _, stages, packed = rebuild_inputs(operands, treedef, static)
    leaves, layout_treedef = jtu.tree_flatten((stages, packed))
    places, dynamic, float0_shapes = [], [], []
    for x in leaves:
        if not is_array(x):
            places.append(x)
        elif x.dtype == jax.dtypes.float0:
            places.append(_FLOAT0)
            float0_shapes.append(tuple(x.shape))
        else:
            places.append(_ARRAY)
            dynamic.append(x)
    layout = (layout_treedef, tuple(places), tuple(float0_shapes))

    def host(index_, *dynamic_):
        static_fn = _FUNCTIONS[int(np.asarray(index_).reshape(()))]
        return tuple(_compiled(static_fn, layout, list(dynamic_)))

    shapes = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals_out)
    return jax.pure_callback(host, shapes, index, *dynamic)


def _noinline_lowering(ctx, *operands, treedef, static, out):
    del out
    fn = ft.partial(_lowered, treedef=treedef, static=static, avals_out=ctx.avals_out)
    return mlir.lower_fun(fn, multiple_results=True)(ctx, *operands)


noinline_p = jax.extend.core.Primitive("ecliptic_noinline")
noinline_p.multiple_results = True
noinline_p.def_impl(filter_primitive_def(_noinline_impl))
noinline_p.def_abstract_eval(filter_primitive_def(_noinline_abstract))
ad.primitive_jvps[noinline_p] = filter_primitive_jvp(_noinline_jvp)
ad.primitive_transposes[noinline_p] = filter_primitive_transpose(
    _noinline_transpose, materialise_zeros=True
)
batching.primitive_batchers[noinline_p] = filter_primitive_batching(_noinline_batch)
mlir.register_lowering(noinline_p, _noinline_lowering)


class _NoInline(Module):
    index: Int[Array | np.generic, ""]
    abstract_fn: Callable = field(static=True)
    dynamic_fn: Any

    @property
    def __wrapped__(self) -> Callable:
        return self.abstract_fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return filter_primitive_bind(
            noinline_p,
            self.index,
            self.abstract_fn,
            (),
            (self.dynamic_fn, args, kwargs),
        )


def noinline(fn: Callable, abstract_fn: Callable | None = None) -> Callable:
    """Marks `fn` as a sub-computation that is compiled once, on its own, instead of
    being inlined into every program that calls it. This cuts compile time when the
    same function is called in many places, at some cost in run time (each call goes
    through a host callback). `jit`, `vmap`, `jvp` and `grad` all work.

    **Arguments:**

    - `fn`: any callable PyTree (e.g. a function or a Module). Its array leaves are
        inputs of the computation (so they can be differentiated); array arguments
        are traced, other arguments are static (a new value recompiles).
    - `abstract_fn`: optional; `abstract_fn(dynamic_fn, *args, **kwargs)` gives the
        output structure, shapes and dtypes (it is only evaluated abstractly), where
        `dynamic_fn` is the array part of `fn`. Two noinline'd functions with the
        same `abstract_fn` can be swapped inside a compiled program without
        recompiling it. By default it is built from `fn`.

    **Returns:** a callable, called as `fn` would be.
    """
    dynamic_fn, static_fn = hashable_partition(fn, is_array)
    number = _NUMBER_OF.get(static_fn)
    if number is None:
        number = len(_FUNCTIONS)
        _NUMBER_OF[static_fn] = number
        _FUNCTIONS.append(static_fn)
        _DEFAULT_ABSTRACT.append(_abstract_from(static_fn))
    if abstract_fn is None:
        # One per function, so that `noinline(f)` twice gives equal wrappers.
        abstract_fn = _DEFAULT_ABSTRACT[number]
    wrapper = _NoInline(np.int32(number), abstract_fn, dynamic_fn)
    return module_update_wrapper(wrapper)


def _abstract_from(static_fn: Any) -> Callable:
    def abstract_fn(__dynamic_fn, *args, **kwargs):
        return hashable_combine(__dynamic_fn, static_fn)(*args, **kwargs)

    return abstract_fn
