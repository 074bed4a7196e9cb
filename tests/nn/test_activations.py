"""`ecliptic.nn.PReLU`."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import ecliptic.nn as enn


def test_default_slope_and_values():
    prelu = enn.PReLU()
    assert prelu.negative_slope.shape == ()
    np.testing.assert_allclose(prelu.negative_slope, 0.25)
    x = jnp.array([-2.0, -0.5, 0.0, 3.0])
    np.testing.assert_allclose(prelu(x), [-0.5, -0.125, 0.0, 3.0])


def test_per_channel_slope_broadcasts():
    prelu = enn.PReLU(jnp.array([[0.0], [1.0]]))
    x = -jnp.ones((2, 3))
    np.testing.assert_allclose(prelu(x), [[0.0] * 3, [-1.0] * 3])


def test_accepts_and_ignores_key():
    prelu = enn.PReLU(0.5)
    x = jnp.array([-1.0, 2.0])
    np.testing.assert_allclose(prelu(x, key=jr.PRNGKey(0)), prelu(x))


def test_slope_is_learnable():
    prelu = enn.PReLU(0.5)
    grad = jax.grad(lambda p: jnp.sum(p(jnp.array([-2.0, -1.0, 4.0]))))(prelu)
    np.testing.assert_allclose(grad.negative_slope, -3.0)


def test_keeps_low_precision_inputs():
    prelu = enn.PReLU()
    assert prelu(jnp.ones(3, jnp.bfloat16)).dtype == jnp.bfloat16
