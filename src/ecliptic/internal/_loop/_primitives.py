"""The two primitives behind the loops' buffers and `vmap` support.

`select_if_vmap_p(pred, x, y)`
    `lax.select(pred, x, y)` once `pred` is batched; `x` while `pred` is unbatched.
    Inside a loop body an unbatched predicate is always `True` (the body runs only
    while the loop goes on), so the select costs nothing until `vmap` makes some
    members finish before others; then it freezes the finished ones.

`maybe_set_p(pred, xs, x, *index_leaves)`
    `xs.at[i].set(where(pred, x, xs[i]))` for a location `i` written at most once.
    Its transpose passes the cotangent of `xs` through unchanged (no zero written at
    `i`): a write-once location is read once on the way back, so nothing else reads
    that entry. That keeps the backward pass free of scatters, which XLA would
    otherwise perform out of place (a copy of the whole buffer per step).

Batching `maybe_set_p` keeps it one primitive, so that its cheap transpose survives
`vmap`: the batch axes move to the front and are recorded in the `levels` parameter
(outermost first: the axis size and which operands carry that axis); the rules run
the unbatched rule under one `jax.vmap` per level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.core
import jax.extend.core
import jax.interpreters.ad as ad
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np


# ---------------------------------------------------------------------------------
# select_if_vmap_p
# ---------------------------------------------------------------------------------

select_if_vmap_p = jax.extend.core.Primitive("select_if_vmap")


def _select_impl(pred: Any, x: Any, y: Any) -> Any:
    del pred, y  # unbatched: the predicate is known to be True
    return x


def _select_abstract(pred: Any, x: Any, y: Any) -> Any:
    return x


def _select_jvp(primals: Sequence, tangents: Sequence) -> tuple:
    pred, x, y = primals
    _, tx, ty = tangents
    out = select_if_vmap_p.bind(pred, x, y)
    if type(tx) is ad.Zero and type(ty) is ad.Zero:
        return out, tx
    tx = ad.instantiate_zeros(tx)
    ty = ad.instantiate_zeros(ty)
    return out, select_if_vmap_p.bind(pred, tx, ty)


def _select_transpose(ct: Any, pred: Any, x: Any, y: Any) -> list:
    if type(ct) is ad.Zero:
        return [None, None, None]
    zero = jnp.zeros(ct.shape, ct.dtype)
    ct_x = select_if_vmap_p.bind(pred, ct, zero) if ad.is_undefined_primal(x) else None
    ct_y = select_if_vmap_p.bind(pred, zero, ct) if ad.is_undefined_primal(y) else None
    return [None, ct_x, ct_y]


def _to_front(x: Any, dim: int | None, size: int) -> Any:
    """`x` with its batch axis first; broadcast along a new first axis if unbatched."""
    if dim is None:
        return jnp.broadcast_to(x, (size,) + jnp.shape(x))
    return jnp.moveaxis(x, dim, 0)


def _batch_size(args: Sequence, dims: Sequence) -> int:
    return next(jnp.shape(a)[d] for a, d in zip(args, dims) if d is not None)


def _select_batch(args: Sequence, dims: Sequence) -> tuple:
    pred, x, y = args
    dpred, dx, dy = dims
    size = _batch_size(args, dims)
    x = _to_front(x, dx, size)
    y = _to_front(y, dy, size)
    if dpred is None:
        return select_if_vmap_p.bind(pred, x, y), 0
    pred = jnp.moveaxis(pred, dpred, 0)
    pred = jnp.reshape(pred, (size,) + (1,) * (x.ndim - 1))
    return lax.select(jnp.broadcast_to(pred, x.shape), x, y), 0


select_if_vmap_p.def_impl(_select_impl)
select_if_vmap_p.def_abstract_eval(_select_abstract)
ad.primitive_jvps[select_if_vmap_p] = _select_jvp
ad.primitive_transposes[select_if_vmap_p] = _select_transpose
batching.primitive_batchers[select_if_vmap_p] = _select_batch
mlir.register_lowering(
    select_if_vmap_p, mlir.lower_fun(_select_impl, multiple_results=False)
)


def select_if_vmap(pred: Any, x: Any, y: Any, *, makes_false_steps: bool) -> Any:
    """`lax.select(pred, x, y)` for a scalar boolean `pred` (batched or not).

    **Arguments:**

    - `pred`: boolean scalar, shape `()`.
    - `x`, `y`: arrays of one shape and dtype.
    - `makes_false_steps`: whether an unbatched `pred` may be `False` here. If not,
        the select happens only where `vmap` batches `pred`.

    **Returns:** an array like `x`.
    """
    if makes_false_steps:
        return lax.select(pred, x, y)
    return select_if_vmap_p.bind(pred, x, y)


# ---------------------------------------------------------------------------------
# maybe_set_p
# ---------------------------------------------------------------------------------

maybe_set_p = jax.extend.core.Primitive("maybe_set")
maybe_set_p.multiple_results = True


class _Slice:
    """A hashable stand-in for a `slice` inside a static index."""

    __slots__ = ("start", "stop", "step")

    def __init__(self, s: slice):
        self.start, self.stop, self.step = s.start, s.stop, s.step

    def _key(self) -> tuple:
        return (self.start, self.stop, self.step)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Slice) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _hashable(index: Any) -> Any:
    return jtu.tree_map(lambda s: _Slice(s) if isinstance(s, slice) else s, index)


def _raw(index: Any) -> Any:
    def _restore(s: Any) -> Any:
        return slice(s.start, s.stop, s.step) if isinstance(s, _Slice) else s

    return jtu.tree_map(_restore, index, is_leaf=lambda s: isinstance(s, _Slice))


def _index(index_leaves: Sequence, index_static: tuple) -> Any:
    """Rebuilds an index from its array leaves and its static skeleton."""
    skeleton, treedef = index_static
    leaves = iter(index_leaves)
    filled = [next(leaves) if s is None else s for s in _raw(skeleton)]
    return jtu.tree_unflatten(treedef, filled)


def _under_levels(levels: tuple, fn: Callable, masks: Sequence, operands: list) -> Any:
    """`fn(*operands)` under one `jax.vmap` per recorded batch level."""
    if not levels:
        return fn(*operands)
    size, _ = levels[0]
    rest = levels[1:]
    inner_masks = [m[1:] for m in masks]
    in_axes = [0 if m[0] else None for m in masks]

    def _inner(*ops: Any) -> Any:
        return _under_levels(rest, fn, inner_masks, list(ops))

    return jax.vmap(_inner, in_axes=in_axes, axis_size=size)(*operands)


def _operand_masks(levels: tuple, n: int) -> list:
    """Per operand, the tuple of levels at which it carries a batch axis."""
    return [tuple(mask[j] for _, mask in levels) for j in range(n)]


def _set_once(pred, xs, x, *index_leaves, index_static, kwargs, makes_false_steps):
    i = _index(index_leaves, index_static)
    kw = dict(kwargs)
    old = xs.at[i].get(**kw)
    x = select_if_vmap(pred, x, old, makes_false_steps=makes_false_steps)
    return xs.at[i].set(x, **kw)


def _maybe_set_impl(*operands, index_static, kwargs, makes_false_steps, levels):
    def _fn(*ops: Any) -> Any:
        return _set_once(
            *ops,
            index_static=index_static,
            kwargs=kwargs,
            makes_false_steps=makes_false_steps,
        )

    masks = _operand_masks(levels, len(operands))
    return [_under_levels(levels, _fn, masks, list(operands))]


def _maybe_set_abstract(pred, xs, x, *index_leaves, **params):
    del pred, x, index_leaves, params
    return [xs]


def _maybe_set_jvp(primals: Sequence, tangents: Sequence, **params: Any) -> tuple:
    pred, xs, x, *index_leaves = primals
    _, t_xs, t_x, *_ = tangents
    out = maybe_set_p.bind(*primals, **params)
    if type(t_xs) is ad.Zero and type(t_x) is ad.Zero:
        return out, [t_xs]
    t_xs = ad.instantiate_zeros(t_xs)
    t_x = ad.instantiate_zeros(t_x)
    t_out = maybe_set_p.bind(pred, t_xs, t_x, *index_leaves, **params)
    return out, t_out


def _maybe_set_transpose(cts: Sequence, pred, xs, x, *index_leaves, **params) -> list:
    [ct] = cts
    none_for_index = [None] * len(index_leaves)
    if type(ct) is ad.Zero:
        return [None, None, None] + none_for_index
    # Write-once: the entry at `i` is read by nothing else on the way back, so the
    # cotangent of `xs` is `ct` itself (no zero written at `i`).
    ct_xs = ct if ad.is_undefined_primal(xs) else None
    ct_x = None
    if ad.is_undefined_primal(x):
        kw = dict(params["kwargs"])
        static = params["index_static"]
        mfs = params["makes_false_steps"]

        def _read(pred: Any, ct: Any, *leaves: Any) -> Any:
            got = ct.at[_index(leaves, static)].get(**kw)
            zero = jnp.zeros_like(got)
            return select_if_vmap(pred, got, zero, makes_false_steps=mfs)

        levels = params["levels"]
        masks = _operand_masks(levels, 3 + len(index_leaves))
        del masks[2]  # `x` is not an operand of `_read`
        ct_x = _under_levels(levels, _read, masks, [pred, ct, *index_leaves])
    return [None, ct_xs, ct_x] + none_for_index


def _maybe_set_batch(args: Sequence, dims: Sequence, **params: Any) -> tuple:
    size = _batch_size(args, dims)
    args = list(args)
    mask = [d is not None for d in dims]
    for j, d in enumerate(dims):
        if d is not None:
            args[j] = jnp.moveaxis(args[j], d, 0)
    # The buffer and the value written carry every batch axis of the operation.
    for j in (1, 2):
        if not mask[j]:
            args[j] = jnp.broadcast_to(args[j], (size,) + jnp.shape(args[j]))
            mask[j] = True
    levels = ((size, tuple(mask)),) + params.pop("levels")
    return maybe_set_p.bind(*args, levels=levels, **params), [0]


maybe_set_p.def_impl(_maybe_set_impl)
maybe_set_p.def_abstract_eval(_maybe_set_abstract)
ad.primitive_jvps[maybe_set_p] = _maybe_set_jvp
ad.primitive_transposes[maybe_set_p] = _maybe_set_transpose
batching.primitive_batchers[maybe_set_p] = _maybe_set_batch
mlir.register_lowering(
    maybe_set_p, mlir.lower_fun(_maybe_set_impl, multiple_results=True)
)


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, jax.core.Tracer, np.ndarray, np.generic))


def maybe_set(
    pred: Any, xs: Any, x: Any, index: Any, *, kwargs: dict, makes_false_steps: bool
) -> Any:
    """`xs.at[index].set(x, **kwargs)` where `pred`, else `xs`; `index` written once.

    **Arguments:**

    - `pred`: boolean scalar, shape `()`.
    - `xs`: the buffer, an array of any shape.
    - `x`: the value, broadcastable to `xs[index]` (cast to `xs`'s dtype).
    - `index`: any index `xs[index]` accepts (arrays, ints, slices, tuples of them).
    - `kwargs`: keyword arguments of `.at[].set` (`mode=`, `unique_indices=`...).
    - `makes_false_steps`: whether an unbatched `pred` may be `False`.

    **Returns:** the new buffer, like `xs`.
    """
    x = jnp.asarray(x).astype(xs.dtype)
    x = jnp.broadcast_to(x, jax.eval_shape(lambda: xs[index]).shape)
    leaves, treedef = jtu.tree_flatten(index)
    dynamic = [jnp.asarray(leaf) for leaf in leaves if _is_array(leaf)]
    skeleton = tuple(None if _is_array(leaf) else leaf for leaf in leaves)
    index_static = (_hashable(skeleton), treedef)
    [out] = maybe_set_p.bind(
        jnp.asarray(pred),
        xs,
        x,
        *dynamic,
        index_static=index_static,
        kwargs=tuple(sorted(kwargs.items())),
        makes_false_steps=makes_false_steps,
        levels=(),
    )
    return out
