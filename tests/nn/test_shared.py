import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic.nn._shared import SharedNode

from .helpers import linear, merge, split_params


def test_ties_weights(getkey):
    a, b = linear(3, 3, key=getkey()), linear(3, 3, key=getkey())
    shared = nn.Shared((a, b), lambda p: p[1].weight, lambda p: p[0].weight)
    assert isinstance(shared.pytree[1].weight, SharedNode)
    assert repr(shared.pytree[1].weight) == "SharedNode"
    a2, b2 = shared()
    assert b2.weight is a2.weight
    np.testing.assert_allclose(b2.bias, b.bias)


def test_gradient_accumulates_into_one_parameter(getkey):
    a, b = linear(2, 2, key=getkey()), linear(2, 2, key=getkey())
    shared = nn.Shared((a, b), lambda p: p[1].weight, lambda p: p[0].weight)
    x = jr.normal(getkey(), (2,))
    params, static = split_params(shared)

    def loss(p):
        first, second = merge(p, static)()
        return jnp.sum(second(first(x)))

    grads = jax.grad(loss)(params)
    # only one weight exists in the tree, and it gets both uses' gradients
    assert len(jtu.tree_leaves(params)) == 3

    def loss_untied(w1, w2):
        first = jtu.tree_unflatten(jtu.tree_structure(a), [w1, a.bias])
        second = jtu.tree_unflatten(jtu.tree_structure(b), [w2, b.bias])
        return jnp.sum(second(first(x)))

    g1, g2 = jax.grad(loss_untied, argnums=(0, 1))(a.weight, a.weight)
    np.testing.assert_allclose(grads.pytree[0].weight, g1 + g2, rtol=1e-5)


def test_transposed_get(getkey):
    a, b = linear(3, 2, key=getkey()), linear(2, 3, key=getkey())
    shared = nn.Shared((a, b), lambda p: p[1].weight, lambda p: p[0].weight.T)
    _, b2 = shared()
    np.testing.assert_allclose(b2.weight, a.weight.T)


def test_mismatch_error(getkey):
    a, b = linear(3, 2, key=getkey()), linear(2, 3, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"got get\(pytree\) = PyTreeDef\(\*\) with leaves \[float32\[2, 3\]\] "
        r"and where\(pytree\) = PyTreeDef\(\*\) with leaves \[float32\[3, 2\]\]",
    ):
        nn.Shared((a, b), lambda p: p[1].weight, lambda p: p[0].weight)
