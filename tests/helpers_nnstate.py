"""Helpers for the stateful / normalisation / attention / rnn tests."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu

import ecliptic


def linear(in_features: Any, out_features: Any, **kwargs: Any) -> Any:
    """`ecliptic.nn.Linear(in_features, out_features, **kwargs)`."""
    return ecliptic.nn.Linear(in_features, out_features, **kwargs)


def split_params(model: Any) -> tuple[Any, Any]:
    """`(params, static)`: the inexact arrays, and everything else."""
    return ecliptic.partition(model, ecliptic.is_inexact_array)


def merge(params: Any, static: Any) -> Any:
    return ecliptic.combine(params, static)


def sgd_losses(model: Any, loss_fn: Any, batch: Any, steps: int, lr: float) -> list:
    """Runs `steps` jitted SGD steps on `loss_fn(model, batch)`; returns the losses."""
    params, static = split_params(model)

    @jax.jit
    def step(params):
        def f(p):
            return loss_fn(merge(p, static), batch)

        loss, grads = jax.value_and_grad(f)(params)
        new = jtu.tree_map(lambda p, g: p - lr * g, params, grads)
        return loss, new

    losses = []
    for _ in range(steps):
        loss, params = step(params)
        losses.append(float(loss))
    return losses


def max_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between the array leaves of two pytrees."""
    la, lb = jtu.tree_leaves(a), jtu.tree_leaves(b)
    assert len(la) == len(lb)
    return max(
        (
            float(jnp.max(jnp.abs(jnp.asarray(x) - jnp.asarray(y))))
            for x, y in zip(la, lb, strict=True)
        ),
        default=0.0,
    )
