"""Helpers for the nn core tests: split a layer into arrays and the rest.

Plain-JAX stand-ins for `partition`/`combine`/`filter_grad`, so that the layer
tests do not depend on the filtered transformations.
"""

import jax
import jax.tree_util as jtu

from ecliptic._filters import is_array, is_inexact_array


def split(tree, predicate=is_array):
    """`(leaves matching predicate, rebuild)`, where `rebuild(leaves)` is the tree."""
    leaves, treedef = jtu.tree_flatten(tree)
    where = [bool(predicate(leaf)) for leaf in leaves]
    dynamic = [leaf for leaf, w in zip(leaves, where, strict=True) if w]

    def rebuild(new):
        it = iter(new)
        full = [next(it) if w else leaf for leaf, w in zip(leaves, where, strict=True)]
        return jtu.tree_unflatten(treedef, full)

    return dynamic, rebuild


def grad_inexact(fn, tree):
    """Gradient of scalar `fn(tree)` w.r.t. the inexact array leaves of `tree`."""
    params, rebuild = split(tree, is_inexact_array)
    return jax.grad(lambda p: fn(rebuild(p)))(params)


def jit_call(layer, *args, **kwargs):
    """Calls `layer(*args, **kwargs)` under `jax.jit`, tracing all array leaves."""
    arrays, rebuild = split((layer, args, kwargs))

    def run(arrays):
        layer, args, kwargs = rebuild(arrays)
        return layer(*args, **kwargs)

    return jax.jit(run)(arrays)
