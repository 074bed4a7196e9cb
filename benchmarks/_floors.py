"""The floor that the training-step benchmarks compare against: the same step under a
plain `jax.jit`, on the flat list of the model's arrays (optax state of that list)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.tree_util as jtu
import optax

import ecliptic


def flat_train_step(model, optim, loss: Callable):
    """`(step, state)`: `step(leaves, opt_state, x, y) -> (leaves, opt_state, value)`
    is a `jax.jit` of `value, grads = value_and_grad(loss)(model, x, y)`, the optax
    update and `optax.apply_updates`, written on the flat list of `model`'s arrays
    (rebuilt inside the trace); `state` is `[leaves, optim.init(leaves)]`."""
    params, static = ecliptic.partition(model, ecliptic.is_array)
    leaves, treedef = jtu.tree_flatten(params)

    @jax.jit
    def step(leaves, opt_state, x, y):
        def flat_loss(leaves):
            m = ecliptic.combine(jtu.tree_unflatten(treedef, leaves), static)
            return loss(m, x, y)

        value, grads = jax.value_and_grad(flat_loss)(leaves)
        updates, opt_state = optim.update(grads, opt_state)
        return optax.apply_updates(leaves, updates), opt_state, value

    return step, [leaves, optim.init(leaves)]


def fed(step, state: list, x, y) -> Callable[[], object]:
    """A call of `step` whose first two outputs are fed back into `state`; it returns
    the third (the loss)."""

    def call():
        state[0], state[1], value = step(state[0], state[1], x, y)
        return value

    return call
