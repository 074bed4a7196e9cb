import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ecliptic import EquinoxRuntimeError
from ecliptic.debug import backward_nan


def test_forward_identity_and_prints_cotangent(capsys):
    def loss(x):
        return (3.0 * backward_nan(x, name="watch")).sum()

    g = jax.grad(loss)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [3.0, 3.0])
    out = capsys.readouterr().out
    assert "watch:" in out
    assert "primals=[[1.0, 2.0]]" in out
    assert "cotangents=[[3.0, 3.0]]" in out


def test_nan_cotangent_raises():
    def loss(x):
        return jnp.sqrt(backward_nan(x) - 1.0).sum()  # d/dy sqrt(-1) is NaN

    with pytest.raises(
        (EquinoxRuntimeError, jax.errors.JaxRuntimeError, ValueError),
        match="Encountered NaN",
    ):
        jax.block_until_ready(jax.jit(jax.grad(loss))(jnp.zeros(2)))


def test_terminate_false_lets_nan_through(capsys):
    def loss(x):
        return jnp.sqrt(backward_nan(x, terminate=False) - 1.0).sum()

    g = jax.grad(loss)(jnp.zeros(2))
    assert bool(jnp.isnan(g).all())
    assert "cotangents=[[nan, nan]]" in capsys.readouterr().out


def test_non_float_leaves_pass_through():
    tree = (jnp.ones(2), jnp.arange(2), "tag")
    out = backward_nan(tree)
    assert out[2] == "tag"
    np.testing.assert_array_equal(out[1], tree[1])
