"""`nondifferentiable`, `nondifferentiable_backward`, `nonbatchable`, `nontraceable`:
the identity under the transformations they allow, the error of Equinox's type under
the ones they forbid."""

import jax
import jax.numpy as jnp
import pytest

import ecliptic as eqx
import ecliptic.internal as eqxi


X = jnp.arange(3.0)


def _sum_of(fn):
    return lambda x: jnp.sum(fn(x))


# ---------------------------------------------------------------------------------
# nontraceable
# ---------------------------------------------------------------------------------


def test_nontraceable_identity_plain_and_jit():
    assert jnp.array_equal(eqxi.nontraceable(X), X)
    assert jnp.array_equal(jax.jit(eqxi.nontraceable)(X), X)


@pytest.mark.parametrize(
    "transform, what",
    [
        (lambda f: jax.vmap(f), "batching"),
        (lambda f: jax.jit(jax.vmap(f)), "batching"),
        (lambda f: lambda x: jax.jvp(f, (x,), (x,)), "differentiation"),
        (lambda f: jax.grad(_sum_of(f)), "differentiation"),
    ],
)
def test_nontraceable_refuses_transforms(transform, what):
    fn = transform(lambda x: eqxi.nontraceable(x, name="my op"))
    with pytest.raises(RuntimeError, match=f"{what} of my op"):
        fn(X)


def test_nontraceable_keeps_non_arrays():
    out = eqxi.nontraceable((X, 1, "a"))
    assert out[1:] == (1, "a")


# ---------------------------------------------------------------------------------
# nondifferentiable
# ---------------------------------------------------------------------------------


def test_nondifferentiable_allows_jit_and_vmap():
    assert jnp.array_equal(jax.jit(eqxi.nondifferentiable)(X), X)
    assert jnp.array_equal(jax.vmap(eqxi.nondifferentiable)(X), X)


def test_nondifferentiable_refuses_jvp_and_grad():
    fn = ft_named(eqxi.nondifferentiable, "thing")
    with pytest.raises(RuntimeError, match="thing cannot be autodifferentiated"):
        jax.jvp(fn, (X,), (X,))
    with pytest.raises(RuntimeError, match="thing cannot be autodifferentiated"):
        jax.grad(_sum_of(fn))(X)


def test_nondifferentiable_custom_message():
    fn = lambda x: eqxi.nondifferentiable(x, msg="no way")  # noqa: E731
    with pytest.raises(RuntimeError, match="^no way"):
        jax.grad(_sum_of(fn))(X)


def test_nondifferentiable_integer_input_is_fine():
    ints = jnp.arange(3)
    tangent = jnp.zeros(3, jax.dtypes.float0)
    out, _ = jax.jvp(eqxi.nondifferentiable, (ints,), (tangent,))
    assert jnp.array_equal(out, ints)


def ft_named(fn, name):
    return lambda x: fn(x, name=name)


# ---------------------------------------------------------------------------------
# nondifferentiable_backward
# ---------------------------------------------------------------------------------


def test_nondifferentiable_backward_allows_jit_vmap_jvp():
    fn = eqxi.nondifferentiable_backward
    assert jnp.array_equal(jax.jit(fn)(X), X)
    assert jnp.array_equal(jax.vmap(fn)(X), X)
    out, t_out = jax.jvp(fn, (X,), (2 * X,))
    assert jnp.array_equal(out, X)
    assert jnp.array_equal(t_out, 2 * X)
    _, t_out = jax.jit(lambda x, t: jax.jvp(fn, (x,), (t,)))(X, X)
    assert jnp.array_equal(t_out, X)


def test_nondifferentiable_backward_refuses_grad():
    fn = lambda x: eqxi.nondifferentiable_backward(x, name="solver")  # noqa: E731
    with pytest.raises(RuntimeError, match="solver cannot be reverse-mode"):
        jax.grad(_sum_of(fn))(X)
    with pytest.raises(RuntimeError, match="solver cannot be reverse-mode"):
        jax.jit(jax.grad(_sum_of(fn)))(X)


def test_nondifferentiable_backward_unused_output_has_no_cotangent():
    def fn(x):
        eqxi.nondifferentiable_backward(x)
        return jnp.sum(x**2)

    assert jnp.array_equal(jax.grad(fn)(X), 2 * X)


def test_nondifferentiable_backward_not_symbolic_checks_at_run_time():
    def zero_use(x):
        return jnp.sum(0 * eqxi.nondifferentiable_backward(x, symbolic=False))

    assert jnp.array_equal(jax.grad(zero_use)(X), jnp.zeros(3))

    def real_use(x):
        return jnp.sum(eqxi.nondifferentiable_backward(x, msg="bad", symbolic=False))

    with pytest.raises(eqx.EquinoxRuntimeError, match="bad"):
        eqx.filter_jit(jax.grad(real_use))(X)


# ---------------------------------------------------------------------------------
# nonbatchable
# ---------------------------------------------------------------------------------


def test_nonbatchable_allows_jit_and_unbatched_vmap():
    assert jnp.array_equal(jax.jit(eqxi.nonbatchable)(X), X)
    # Closed over, so not batched by this vmap.
    out = jax.vmap(lambda y: eqxi.nonbatchable(X) + y)(jnp.ones(2))
    assert out.shape == (2, 3)


def test_nonbatchable_refuses_vmap():
    fn = lambda x: eqxi.nonbatchable(x, name="the step")  # noqa: E731
    with pytest.raises(ValueError, match="the step cannot be vmap'd"):
        jax.vmap(fn)(X)
    with pytest.raises(ValueError, match="the step cannot be vmap'd"):
        jax.jit(jax.vmap(fn))(X)


def test_nonbatchable_refuses_differentiation():
    with pytest.raises(NotImplementedError, match="nonbatchable"):
        jax.jvp(eqxi.nonbatchable, (X,), (X,))
    with pytest.raises(NotImplementedError, match="nonbatchable"):
        jax.grad(_sum_of(eqxi.nonbatchable))(X)


def test_nonbatchable_constant_across_batch():
    def fn(x):
        return eqxi.nonbatchable(x, allow_constant_across_batch=True)

    out = jax.vmap(fn)(jnp.full(4, 2.0))
    assert jnp.array_equal(out, jnp.full(4, 2.0))
    with pytest.raises(eqx.EquinoxRuntimeError, match="Nonconstant batch"):
        eqx.filter_jit(jax.vmap(fn))(X)
