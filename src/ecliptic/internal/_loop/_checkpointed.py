"""`kind="checkpointed"`: a while loop differentiable in reverse mode in fixed memory.

Without differentiation it is a plain `lax.while_loop`. Under `jax.grad` the
forward pass keeps at most `c` states of the loop (the controller of `_schedule.py`
decides which) in a `(c, ...)` store per leaf, plus the step number of each. The
backward pass walks the steps from last to first. For each step it needs the state
before it: it loads the nearest saved state, runs forward (saving states on the way,
binomially, in the free slots) and then takes the VJP of that one step (a "U-turn").

Buffers are not stored: their final value stands in for them when the body is rerun
(a buffer is written once per location and read only where written, so the final
buffer reads the same), and its cotangent passes straight through each U-turn.

Loop structure of the backward pass, one `lax.while_loop` each:

    outer:  per U-turn, from the last step to the first
      climb:  from the top saved state towards the step to reverse, saving states
        run:  plain forward steps (no VJP, no branching)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from ..._custom import filter_closure_convert, filter_custom_vjp
from ..._filters import combine, is_array, is_inexact_array, partition
from ._rewrite import rewrite
from ._schedule import advance, never, slots_init, slots_store


def checkpointed_while_loop(
    cond_fun: Callable,
    body_fun: Callable,
    init_val: Any,
    *,
    max_steps: int | None,
    buffers: Callable | None,
    checkpoints: int,
) -> Any:
    """The checkpointed loop, for validated arguments (`checkpoints >= 1`, already
    capped at `max_steps`). Returns the final value, as `lax.while_loop`."""
    rw = rewrite(cond_fun, body_fun, init_val, max_steps, buffers, False)
    cond = filter_closure_convert(rw.cond, rw.init)
    cond = jtu.tree_map(lambda x: lax.stop_gradient(x) if is_array(x) else x, cond)
    body = filter_closure_convert(rw.body, rw.init)
    every = max_steps is not None and checkpoints >= max_steps
    layout = _Layout((False, False) + rw.mask, checkpoints, every)
    _, _, final_val = _loop((rw.init, body, cond), layout)
    return final_val


class _Layout:
    """Static description of the store: which carry leaves are buffers (`mask`),
    the number of slots `c`, and whether every step has a slot (`every`)."""

    def __init__(self, mask: tuple, c: int, every: bool):
        self.mask, self.c, self.every = mask, c, every

    def _key(self) -> tuple:
        return (self.mask, self.c, self.every)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Layout) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def saved(self, carry: Any) -> list:
        """The leaves of `carry` that are stored (all but the buffers)."""
        leaves = jtu.tree_leaves(carry)
        return [x for x, m in zip(leaves, self.mask) if not m]

    def assemble(self, treedef: Any, saved: list, buffers: list) -> Any:
        saved_it, buffers_it = iter(saved), iter(buffers)
        leaves = [next(buffers_it) if m else next(saved_it) for m in self.mask]
        return jtu.tree_unflatten(treedef, leaves)


@filter_custom_vjp
def _loop(vjp_arg: Any, layout: _Layout) -> Any:
    # `cond` travels in `vjp_arg` (its arrays are stopped, so never perturbed).
    init, body, cond = vjp_arg
    # Plain functions: `lax.while_loop` hashes its callables, and a Module holding
    # a list of constants has no hash.
    return lax.while_loop(lambda c: cond(c), lambda c: body(c), init)


def _write(store: list, slot: Any, saved: list) -> list:
    return [
        lax.dynamic_update_index_in_dim(s, x, slot, 0) for s, x in zip(store, saved)
    ]


def _read(store: list, slot: Any) -> list:
    return [lax.dynamic_index_in_dim(s, slot, 0, keepdims=False) for s in store]


@_loop.def_fwd
def _loop_fwd(perturbed: Any, vjp_arg: Any, layout: _Layout):
    del perturbed
    init, body, cond = vjp_arg
    c = layout.c
    saved0 = layout.saved(init)
    store0 = [jnp.zeros((c,) + x.shape, x.dtype).at[0].set(x) for x in saved0]

    def _cond(carry: Any) -> Any:
        return cond(carry[0])

    def _body(carry: Any) -> Any:
        val, slots, store = carry
        step = val[0]
        if layout.every:
            store = _write(store, step, layout.saved(val))
        elif c > 1:  # with one slot only the initial state is kept
            slot, slots = slots_store(slots, step)
            store = _write(store, slot, layout.saved(val))
        return body(val), slots, store

    final, slots, store = lax.while_loop(_cond, _body, (init, slots_init(c), store0))
    num_steps = final[0]
    if layout.every:
        steps = jnp.arange(c, dtype=num_steps.dtype)
        steps = jnp.where(steps < jnp.maximum(num_steps, 1), steps, never())
        order = jnp.arange(c, dtype=num_steps.dtype)
    else:
        # Stack order: by step. Slots are reached through `order`, so the store is
        # not permuted (which would copy it).
        order = jnp.argsort(slots.steps).astype(num_steps.dtype)
        steps = slots.steps[order]
    buffers = [x for x, m in zip(jtu.tree_leaves(final), layout.mask) if m]
    return final, (num_steps, steps, order, store, buffers)


def _grad_ops(body: Any, perturbed_body: Any, layout: _Layout, treedef, buffers):
    """The two moves of the backward pass: one plain step, and one U-turn."""
    body_diff, body_rest = partition(body, perturbed_body)

    def step(saved: list) -> list:
        return layout.saved(body(layout.assemble(treedef, saved, buffers)))

    def u_turn(saved: list, ct: list, ct_body: Any) -> tuple[list, Any]:
        leaves = jtu.tree_leaves(layout.assemble(treedef, saved, buffers))
        diff = [j for j, x in enumerate(leaves) if is_inexact_array(x)]

        def _f(b_diff: Any, v_diff: list) -> list:
            full = list(leaves)
            for j, v in zip(diff, v_diff):
                full[j] = v
            out = combine(b_diff, body_rest)(jtu.tree_unflatten(treedef, full))
            out_leaves = jtu.tree_leaves(out)
            return [out_leaves[j] for j in diff]

        _, vjp = jax.vjp(_f, body_diff, [leaves[j] for j in diff])
        g_body, g_val = vjp(ct)
        return g_val, jtu.tree_map(operator.add, ct_body, g_body)

    return body_diff, step, u_turn


def _run(step: Callable, saved: list, n: Any) -> list:
    """`n` plain steps forward."""

    def _body(carry: tuple) -> tuple:
        i, saved = carry
        return i + 1, step(saved)

    _, saved = lax.while_loop(lambda carry: carry[0] < n, _body, (0 * n, saved))
    return saved


def _reverse_every(step, u_turn, residuals, ct, ct_body):
    """Backward pass when every state was saved: load and U-turn, step by step."""
    num_steps, _, _, store, _ = residuals

    def _body(carry: tuple) -> tuple:
        g, ct, ct_body = carry
        ct, ct_body = u_turn(_read(store, g - 1), ct, ct_body)
        return g - 1, ct, ct_body

    _, ct, ct_body = lax.while_loop(
        lambda carry: carry[0] > 0, _body, (num_steps, ct, ct_body)
    )
    return ct, ct_body


def _reverse(step, u_turn, residuals, c: int, ct, ct_body):
    """Backward pass with binomial checkpointing between the saved states."""
    num_steps, steps, order, store, _ = residuals
    top0 = jnp.sum(steps < never()).astype(num_steps.dtype)

    def _climb(g: Any, k: Any, steps: Any, store: list) -> tuple:
        cur = steps[k - 1]
        saved = _read(store, order[k - 1])

        def _cond(carry: tuple) -> Any:
            cur, k, *_ = carry
            return (cur < g - 1) & (k < c)

        def _body(carry: tuple) -> tuple:
            cur, k, saved, steps, store = carry
            m = advance(g - cur, c - k + 1)
            saved = _run(step, saved, m)
            cur = cur + m
            store = _write(store, order[k], saved)
            steps = steps.at[k].set(cur)
            k = k + (cur < g - 1).astype(k.dtype)  # the state to U-turn from stays out
            return cur, k, saved, steps, store

        carry = (cur, k, saved, steps, store)
        cur, k, saved, steps, store = lax.while_loop(_cond, _body, carry)
        saved = _run(step, saved, g - 1 - cur)  # only when out of slots
        return saved, k, steps, store

    def _outer(carry: tuple) -> tuple:
        g, k, steps, store, ct, ct_body = carry
        saved, k, steps, store = _climb(g, k, steps, store)
        ct, ct_body = u_turn(saved, ct, ct_body)
        g = g - 1
        k = jnp.where(steps[k - 1] == g, k - 1, k)  # that state is no longer needed
        return g, k, steps, store, ct, ct_body

    init = (num_steps, top0, steps, store, ct, ct_body)
    *_, ct, ct_body = lax.while_loop(lambda carry: carry[0] > 0, _outer, init)
    return ct, ct_body


def _materialise(ct: Any, x: Any) -> Any:
    if not is_inexact_array(x):
        return None
    return jnp.zeros_like(x) if ct is None else ct


@_loop.def_bwd
def _loop_bwd(residuals, ct_out, perturbed, vjp_arg, layout: _Layout):
    init, body, cond = vjp_arg
    _, perturbed_body, _ = perturbed
    nones = jtu.tree_map(lambda _: None, vjp_arg)
    init_leaves, treedef = jtu.tree_flatten(init)
    ct_leaves = jtu.tree_leaves(ct_out, is_leaf=lambda x: x is None)
    if all(ct is None for ct in ct_leaves):
        return nones
    ct = [_materialise(g, x) for g, x in zip(ct_leaves, init_leaves)]
    ct = [g for g in ct if g is not None]
    buffers = residuals[4]
    body_diff, step, u_turn = _grad_ops(body, perturbed_body, layout, treedef, buffers)
    ct_body = jtu.tree_map(jnp.zeros_like, body_diff)
    if layout.every:
        ct, ct_body = _reverse_every(step, u_turn, residuals, ct, ct_body)
    else:
        ct, ct_body = _reverse(step, u_turn, residuals, layout.c, ct, ct_body)
    ct_it = iter(ct)
    ct_init = [next(ct_it) if is_inexact_array(x) else None for x in init_leaves]
    ct_init = jtu.tree_unflatten(treedef, ct_init)
    return ct_init, ct_body, nones[2]
