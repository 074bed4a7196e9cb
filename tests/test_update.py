import jax
import jax.numpy as jnp
import pytest

import ecliptic as ec

from .helpers import make_mlp


def test_apply_updates_adds_and_skips_none():
    model = {"w": jnp.ones(2), "b": jnp.zeros(2), "f": jnp.tanh, "n": 3}
    updates = {"w": jnp.full(2, 2.0), "b": None, "f": None, "n": 1}
    out = ec.apply_updates(model, updates)
    assert jnp.array_equal(out["w"], jnp.full(2, 3.0))
    assert out["b"] is model["b"] and out["f"] is jnp.tanh and out["n"] == 4


def test_apply_updates_prefix_none_skips_subtree():
    model = [(jnp.ones(1), jnp.ones(1)), jnp.ones(1)]
    out = ec.apply_updates(model, [None, jnp.ones(1)])
    assert out[0] is model[0] and jnp.array_equal(out[1], jnp.full(1, 2.0))


def test_apply_updates_on_module_with_filter_grad_style_updates():
    mlp = make_mlp(2)
    params, _ = ec.partition(mlp, ec.is_array)
    grads = jax.tree.map(jnp.ones_like, params)
    new = ec.apply_updates(mlp, grads)
    assert type(new) is type(mlp) and new.activation is jnp.tanh
    assert jnp.array_equal(new.layers[1].weight, mlp.layers[1].weight + 1)
    assert new.layers[1].size == 2


def test_apply_updates_under_jit():
    model = (jnp.ones(2), None)
    out = jax.jit(ec.apply_updates)(model, (jnp.ones(2), None))
    assert jnp.array_equal(out[0], jnp.full(2, 2.0)) and out[1] is None


def test_apply_updates_structure_mismatch_raises():
    with pytest.raises(ValueError):
        ec.apply_updates([jnp.ones(1)], [jnp.ones(1), jnp.ones(1)])
