import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic._module import Module

from .helpers import linear


class AddKey(Module):
    """Adds the first word of its key (or 0), to observe key splitting."""

    def __call__(self, x, *, key=None):
        if key is None:
            return x
        return x + jr.uniform(key, x.shape)


class Scale(nn.StatefulLayer):
    index: nn.StateIndex

    def __init__(self):
        self.index = nn.StateIndex(jnp.array(2.0))

    def __call__(self, x, state, *, key=None):
        s = state.get(self.index)
        return x * s, state.set(self.index, s + 1)


class MaybeStateful(nn.StatefulLayer):
    flag: bool

    def is_stateful(self):
        return self.flag

    def __call__(self, x, state=None, *, key=None):
        return x + 1.0


def test_applies_in_order(getkey):
    l1, l2 = linear(3, 4, key=getkey()), linear(4, 2, key=getkey())
    seq = nn.Sequential([l1, nn.Lambda(jax.nn.relu), l2])
    x = jr.normal(getkey(), (3,))
    np.testing.assert_allclose(seq(x), l2(jax.nn.relu(l1(x))), rtol=1e-6)


def test_key_split_per_layer(getkey):
    seq = nn.Sequential([AddKey(), AddKey()])
    key = getkey()
    k1, k2 = jr.split(key, 2)
    x = jnp.zeros(3)
    expected = jr.uniform(k1, (3,)) + jr.uniform(k2, (3,))
    np.testing.assert_allclose(seq(x, key=key), expected, rtol=1e-6)
    np.testing.assert_allclose(seq(x), x)


def test_stateful_layers_get_state():
    seq, state = nn.make_with_state(nn.Sequential)(
        [nn.Lambda(lambda x: x + 1), Scale(), MaybeStateful(False)]
    )
    assert seq.is_stateful()
    out, state = seq(jnp.ones(2), state)
    np.testing.assert_allclose(out, jnp.full(2, 5.0))
    out, state = seq(jnp.ones(2), state)
    np.testing.assert_allclose(out, jnp.full(2, 7.0))


def test_not_stateful_without_stateful_children():
    seq = nn.Sequential([nn.Lambda(jnp.sin), MaybeStateful(False)])
    assert not seq.is_stateful()
    nested = nn.Sequential([nn.Sequential([Scale()])])
    assert nested.is_stateful()


def test_state_passthrough_returns_tuple():
    seq = nn.Sequential([nn.Lambda(jnp.sin)])
    state = nn.State(seq)
    out, state2 = seq(jnp.zeros(2), state)
    assert state2 is state
    np.testing.assert_allclose(out, jnp.zeros(2))


def test_indexing_slicing_iter_len(getkey):
    layers = [nn.Lambda(jnp.sin), nn.Lambda(jnp.cos), nn.Lambda(jnp.tanh)]
    seq = nn.Sequential(layers)
    assert len(seq) == 3
    assert seq[1] is layers[1]
    assert seq[np.int64(2)] is layers[2]
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert list(seq) == layers
    with pytest.raises(TypeError, match="expected an int or a slice as index"):
        seq["a"]


def test_lambda_fn_is_pytree_node(getkey):
    lin = linear(2, 2, key=getkey())
    lam = nn.Lambda(lin)
    assert len(jtu.tree_leaves(lam)) == len(jtu.tree_leaves(lin))
    x = jnp.ones(2)
    np.testing.assert_allclose(lam(x, key=getkey()), lin(x))


def test_sequential_under_jit_and_vmap(getkey):
    seq = nn.Sequential([linear(3, 2, key=getkey()), nn.Lambda(jax.nn.relu)])
    x = jr.normal(getkey(), (5, 3))
    out = jax.jit(jax.vmap(seq))(x)
    assert out.shape == (5, 2)
    assert jnp.all(out >= 0)
