"""`ecliptic.nn.Dropout`."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as enn


def test_training_zeroes_and_rescales(getkey):
    x = jnp.ones(4000)
    y = enn.Dropout(0.25)(x, key=getkey())
    kept = np.asarray(y) != 0
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
    assert 0.2 < 1 - kept.mean() < 0.3


def test_same_key_same_mask_different_key_different(getkey):
    x = jnp.ones(64)
    d = enn.Dropout(0.5)
    key = getkey()
    assert np.array_equal(d(x, key=key), d(x, key=key))
    assert not np.array_equal(d(x, key=key), d(x, key=getkey()))


def test_inference_and_p_zero_are_identity():
    x = jnp.arange(5.0)
    assert enn.Dropout(0.5, inference=True)(x) is x
    assert enn.Dropout(0.0)(x) is x
    assert enn.Dropout(0.5)(x, inference=True) is x


def test_call_inference_false_overrides_module(getkey):
    d = enn.Dropout(0.9, inference=True)
    y = d(jnp.ones(100), key=getkey(), inference=False)
    assert int(jnp.sum(y == 0)) > 50


def test_missing_key_raises():
    with pytest.raises(RuntimeError, match=r"Dropout\(p=0.5\) is in training mode"):
        enn.Dropout()(jnp.ones(3))


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_out_of_range(p):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        enn.Dropout(p)


def test_deterministic_is_deprecated():
    with pytest.warns(UserWarning, match="`deterministic` is deprecated"):
        d = enn.Dropout(0.5, deterministic=True)
    assert d.inference and d.deterministic
    x = jnp.ones(3)
    with pytest.warns(UserWarning, match="`deterministic` is deprecated"):
        assert enn.Dropout(0.5)(x, deterministic=True) is x


def test_p_is_a_leaf_and_can_be_traced(getkey):
    d = enn.Dropout(0.5)
    assert 0.5 in jax.tree.leaves(d)
    call = lambda p, x, k: enn.Dropout(p)(x, key=k)
    y = jax.jit(call)(0.5, jnp.ones(8), getkey())
    assert y.shape == (8,)


def test_gradient_does_not_flow_into_p(getkey):
    key = getkey()
    grad = jax.grad(lambda p: jnp.sum(enn.Dropout(p)(jnp.ones(8), key=key)))(0.5)
    # With p frozen (stop_gradient), the gradient of the kept-mask sum is zero.
    assert float(grad) == 0.0


def test_works_under_vmap_with_split_keys(getkey):
    keys = jr.split(getkey(), 3)
    y = jax.vmap(lambda x, k: enn.Dropout(0.5)(x, key=k))(jnp.ones((3, 50)), keys)
    assert not np.array_equal(y[0], y[1])
