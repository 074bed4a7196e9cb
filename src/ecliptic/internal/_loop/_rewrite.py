"""The rewrite that every loop kind runs on: `(cond_fun, body_fun, init_val)` becomes a
loop over the carry `(step, pred, val)`.

- `step` counts the steps taken, so that `max_steps` can end the loop.
- `pred` is the user's `cond_fun` at `val`, kept in the carry. The loop's own
  condition is `unvmap_any(pred)`: never batched, so under `vmap` the loop runs until
  every member has finished, a `lax.cond` inside stays a branch, and a checkpointed
  loop keeps one schedule for the whole batch.
- The body leaves a finished member unchanged (`select_if_vmap`), and wraps the
  `buffers` leaves so that the user's writes become `maybe_set_p`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ..._messages import body_structure_error, cond_output_error
from ..._pretty_print import tree_pformat
from ..._unvmap import unvmap_any
from ._buffer import buffer_mask, is_own_buffer, wrap
from ._primitives import select_if_vmap


class Rewritten(NamedTuple):
    """The rewritten loop: `cond(carry)`, `body(carry)`, `init` = `(step, pred, val)`,
    and `mask`, which flat leaves of `val` are buffers."""

    cond: Callable[[Any], Any]
    body: Callable[[Any], Any]
    init: Any
    mask: tuple[bool, ...]


def step_dtype() -> Any:
    """The integer dtype of step counters (int64 when x64 is on)."""
    return jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32


def _as_pred(out: Any) -> Any:
    out = jnp.asarray(out)
    if out.shape != () or out.dtype != jnp.bool_:
        raise cond_output_error(out.shape, out.dtype)
    return out


def _struct(tree: Any) -> Any:
    return jtu.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype), tree)


def _check_structure(before: Any, after: Any) -> None:
    s_before, s_after = _struct(before), _struct(after)
    if jtu.tree_structure(s_before) == jtu.tree_structure(s_after) and all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jtu.tree_leaves(s_before), jtu.tree_leaves(s_after))
    ):
        return
    raise body_structure_error(
        tree_pformat(s_before, struct_as_array=True),
        tree_pformat(s_after, struct_as_array=True),
    )


def rewrite(
    cond_fun: Callable,
    body_fun: Callable,
    init_val: Any,
    max_steps: int | None,
    buffers: Callable | None,
    makes_false_steps: bool,
) -> Rewritten:
    """Rewrites a user loop into one over `(step, pred, val)`.

    **Arguments:**

    - `cond_fun`, `body_fun`, `init_val`: the user's loop (as `lax.while_loop`).
    - `max_steps`: a Python int bounding the steps, or `None`.
    - `buffers`: the user's `buffers` function, or `None`.
    - `makes_false_steps`: whether the body may run with an unbatched `pred` that is
        `False` (the bounded loop); then the selects are real.

    **Returns:** a `Rewritten`.
    """
    val0 = jtu.tree_map(jnp.asarray, init_val)
    mask = buffer_mask(buffers, val0)
    mfs = makes_false_steps

    def cond(carry: Any) -> Any:
        step, pred, _ = carry
        out = unvmap_any(pred)
        if max_steps is not None:
            out = out & (step < max_steps)
        return out

    def body(carry: Any) -> Any:
        step, pred, val = carry
        tag = object()
        own = is_own_buffer(tag)
        new = body_fun(wrap(val, mask, pred, tag, mfs))
        new = jtu.tree_map(lambda x: x if own(x) else jnp.asarray(x), new, is_leaf=own)
        unwrapped = jtu.tree_map(lambda x: x._array if own(x) else x, new, is_leaf=own)
        _check_structure(val, unwrapped)
        old_leaves, treedef = jtu.tree_flatten(val)
        new_leaves = jtu.tree_leaves(new, is_leaf=own)
        out = []
        for old, nw in zip(old_leaves, new_leaves):
            if own(nw):  # its writes already leave finished members unchanged
                out.append(nw._array)
            else:
                out.append(select_if_vmap(pred, nw, old, makes_false_steps=mfs))
        val2 = jtu.tree_unflatten(treedef, out)
        pred2 = pred & _as_pred(cond_fun(new))
        return step + 1, pred2, val2

    pred0 = _as_pred(cond_fun(wrap(val0, mask, jnp.asarray(True), None, mfs)))
    init = (jnp.zeros((), step_dtype()), pred0, val0)
    return Rewritten(cond, body, init, mask)
