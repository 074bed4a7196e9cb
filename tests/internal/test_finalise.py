"""Finalisation replaces ecliptic's custom primitives by plain JAX operations."""

import jax
import jax.extend.core
import jax.interpreters.mlir as mlir
import jax.numpy as jnp
import pytest

import ecliptic.internal as eqxi


def _primitives(jaxpr):
    """Every primitive in a jaxpr, sub-jaxprs included."""
    found = set()
    for eqn in jaxpr.eqns:
        found.add(eqn.primitive)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found |= _primitives(sub)
    return found


CUSTOM = {
    eqxi.nontraceable_p,
    eqxi.nonbatchable_p,
    eqxi.nondifferentiable_backward_p,
    eqxi.unvmap_any_p,
    eqxi.unvmap_max_p,
    eqxi.noinline_p,
    eqxi.announce_jaxpr_p,
}


def fn(x):
    x = eqxi.nontraceable(x)
    x = eqxi.nonbatchable(x)
    x = eqxi.nondifferentiable_backward(x)
    x = eqxi.announce_transform(x, announce=lambda _: None)
    x = eqxi.noinline(jnp.sin)(x)
    flag = eqxi.unvmap_any(x > 0)
    biggest = eqxi.unvmap_max(x)
    return jax.lax.stop_gradient(x) + jnp.where(flag, biggest, 0.0)


X = jnp.array([0.5, -1.0, 2.0])


def test_finalise_make_jaxpr_removes_custom_primitives():
    before = _primitives(jax.make_jaxpr(fn)(X).jaxpr)
    assert CUSTOM <= before
    after = eqxi.finalise_make_jaxpr(fn)(X)
    assert not (_primitives(after.jaxpr) & CUSTOM)
    assert jax.lax.stop_gradient_p not in _primitives(after.jaxpr)
    jaxpr, shape = eqxi.finalise_make_jaxpr(fn, return_shape=True)(X)
    assert shape.shape == (3,)


def test_finalised_function_gives_the_same_values():
    expected = fn(X)
    assert jnp.allclose(eqxi.finalise_fn(fn)(X), expected)
    assert jnp.allclose(jax.jit(eqxi.finalise_fn(fn))(X), expected)
    closed = jax.make_jaxpr(fn)(X)
    (out,) = eqxi.finalise_jaxpr_as_fn(closed)(X)
    assert jnp.allclose(out, expected)
    (out,) = eqxi.finalise_eval_jaxpr(closed.jaxpr, closed.consts, X)
    assert jnp.allclose(out, expected)
    final = eqxi.finalise_jaxpr(closed)
    assert not (_primitives(final.jaxpr) & CUSTOM)
    (out,) = jax.core.eval_jaxpr(final.jaxpr, final.consts, X)
    assert jnp.allclose(out, expected)


def test_finalise_inlines_custom_jvp_and_sub_jaxprs():
    @jax.custom_jvp
    def g(x):
        return eqxi.nonbatchable(x) * 2

    g.defjvp(lambda p, t: (g(p[0]), t[0]))

    def h(x):
        return jax.lax.cond(x[0] > 0, g, lambda y: y, x)

    after = _primitives(eqxi.finalise_make_jaxpr(h)(X).jaxpr)
    assert eqxi.nonbatchable_p not in after
    assert jnp.allclose(eqxi.finalise_fn(h)(X), h(X))


def test_register_impl_finalisation():
    prim = jax.extend.core.Primitive("test_plus_one")
    prim.def_impl(lambda x: x + 1)
    prim.def_abstract_eval(lambda x: x)
    mlir.register_lowering(prim, mlir.lower_fun(lambda x: x + 1, False))
    assert prim in _primitives(eqxi.finalise_make_jaxpr(prim.bind)(X).jaxpr)
    eqxi.register_impl_finalisation(prim)
    try:
        assert prim in eqxi.primitive_finalisations
        jaxpr = eqxi.finalise_make_jaxpr(prim.bind)(X)
        assert prim not in _primitives(jaxpr.jaxpr)
    finally:
        del eqxi.primitive_finalisations[prim]


def _batchable(x):
    x = eqxi.nondifferentiable_backward(x)
    return x + jnp.where(eqxi.unvmap_any(x > 0), eqxi.unvmap_max(x), 0.0)


def _scalar(x):
    return jnp.sum(eqxi.nondifferentiable_backward(x, symbolic=False) * 0)


@pytest.mark.parametrize("f", [jax.vmap(_batchable), jax.grad(_scalar)])
def test_finalise_after_a_transformation(f):
    assert jnp.allclose(eqxi.finalise_fn(f)(X), f(X))
