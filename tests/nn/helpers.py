"""Helpers shared by the `tests/nn` tests. Import them one way, relatively:
`from .helpers import linear, split`.

`split` and `grad_inexact` are plain-JAX stand-ins for `partition` / `combine` /
`filter_grad`, so that the cross-cutting layer tests do not depend on ecliptic's
filtered transformations; `split_params` / `merge` / `sgd_losses` use them, for
tests that train a small model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.tree_util as jtu

import ecliptic
from ecliptic import is_array, is_inexact_array


def split(
    tree: Any, predicate: Callable[[Any], bool] = is_array
) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """`(leaves matching predicate, rebuild)`, where `rebuild(leaves)` is the tree."""
    leaves, treedef = jtu.tree_flatten(tree)
    where = [bool(predicate(leaf)) for leaf in leaves]
    dynamic = [leaf for leaf, w in zip(leaves, where, strict=True) if w]

    def rebuild(new: list[Any]) -> Any:
        it = iter(new)
        full = [next(it) if w else leaf for leaf, w in zip(leaves, where, strict=True)]
        return jtu.tree_unflatten(treedef, full)

    return dynamic, rebuild


def grad_inexact(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Gradient of scalar `fn(tree)` w.r.t. the inexact array leaves of `tree`."""
    params, rebuild = split(tree, is_inexact_array)
    return jax.grad(lambda p: fn(rebuild(p)))(params)


def linear(in_features: Any, out_features: Any, **kwargs: Any) -> Any:
    """`ecliptic.nn.Linear(in_features, out_features, **kwargs)`."""
    return ecliptic.nn.Linear(in_features, out_features, **kwargs)


def split_params(model: Any) -> tuple[Any, Any]:
    """`(params, static)`: the inexact arrays, and everything else."""
    return ecliptic.partition(model, ecliptic.is_inexact_array)


def merge(params: Any, static: Any) -> Any:
    """Inverse of `split_params`."""
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
