"""`vmap_leading`: a single-example function mapped over several leading axes."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx


def _linear():
    return eqx.nn.Linear(4, 3, key=jr.PRNGKey(0))


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_equals_nested_vmap(n):
    layer = _linear()
    x = jr.normal(jr.PRNGKey(1), (2, 3, 5)[:n] + (4,))
    expected = layer
    for _ in range(n):
        expected = jax.vmap(expected)
    out = eqx.vmap_leading(layer, n)(x)
    assert out.shape == x.shape[:n] + (3,)
    np.testing.assert_allclose(out, expected(x), rtol=1e-6)


def test_example_shape_infers_the_axes():
    layer = _linear()
    mapped = eqx.vmap_leading(layer, example_shape=(4,))
    for lead in [(), (2,), (2, 3), (2, 3, 5)]:
        x = jnp.ones(lead + (4,))
        assert mapped(x).shape == lead + (3,)
    conv = eqx.nn.Conv2d(2, 3, 3, key=jr.PRNGKey(0))
    out = eqx.vmap_leading(conv, example_shape=(2, None, None))(
        jnp.ones((4, 5, 2, 8, 8))
    )
    assert out.shape == (4, 5, 3, 6, 6)


def test_several_array_arguments_share_the_axes_and_kwargs_are_not_mapped():
    attention = eqx.nn.MultiheadAttention(2, 8, key=jr.PRNGKey(0))
    q = jr.normal(jr.PRNGKey(1), (3, 4, 5, 8))
    kv = jr.normal(jr.PRNGKey(2), (3, 4, 6, 8))
    mask = jnp.tril(jnp.ones((5, 6), bool))  # one mask for every example
    out = eqx.vmap_leading(attention, 2)(q, kv, kv, mask=mask)
    one = attention(q[1, 2], kv[1, 2], kv[1, 2], mask=mask)
    np.testing.assert_allclose(out[1, 2], one, rtol=1e-5, atol=1e-6)


def test_keyword_arguments_stay_unmapped_under_filter_jit():
    # `filter_jit` binds keyword arguments to positions by the signature it finds;
    # `mask=` must still reach every example unmapped.
    def masked(x, mask=None):
        return jnp.where(mask, x, 0.0)

    x = jnp.arange(12.0).reshape(3, 4)
    mask = jnp.array([True, False, True, False])
    expected = eqx.vmap_leading(masked, 1)(x, mask=mask)
    out = eqx.filter_jit(eqx.vmap_leading(masked, 1))(x, mask=mask)
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, jnp.where(mask, x, 0.0))


def test_non_array_arguments_are_passed_unchanged():
    def scale(x, factor, name):
        assert isinstance(factor, float) and name == "a"
        return x * factor

    out = eqx.vmap_leading(scale, 2)(jnp.ones((2, 3)), 2.0, "a")
    assert jnp.array_equal(out, 2 * jnp.ones((2, 3)))


def test_under_jit_and_grad():
    layer = _linear()
    x = jnp.ones((2, 3, 4))

    @eqx.filter_jit
    @eqx.filter_grad
    def grads(model):
        return jnp.sum(eqx.vmap_leading(model, 2)(x))

    g = grads(layer)
    expected = jax.grad(lambda w: jnp.sum(jax.vmap(jax.vmap(lambda v: w @ v))(x)))(
        layer.weight
    )
    np.testing.assert_allclose(g.weight, expected, rtol=1e-6)


def test_bad_arguments():
    layer = _linear()
    with pytest.raises(ValueError, match="either `n`"):
        eqx.vmap_leading(layer)
    with pytest.raises(ValueError, match="either `n`"):
        eqx.vmap_leading(layer, 1, example_shape=(4,))
    with pytest.raises(ValueError, match="either `n`"):
        eqx.vmap_leading(layer, -1)
    with pytest.raises(eqx.ShapeError, match=r"at least 3 axes") as info:
        eqx.vmap_leading(layer, 3)(jnp.ones((2, 4)))
    assert info.value.actual == (2, 4)
    with pytest.raises(eqx.ShapeError, match=r"end in an example of shape \(4,\)"):
        eqx.vmap_leading(layer, example_shape=(4,))(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="there is none"):
        eqx.vmap_leading(lambda x=None: x, 1)(x=jnp.ones(3))


def test_the_layer_still_checks_its_example():
    with pytest.raises(eqx.ShapeError, match="expected `x` of shape"):
        eqx.vmap_leading(_linear(), 1)(jnp.ones((2, 5)))
