"""`noinline`: the same values as calling the function inline, under `jit`, `vmap`,
`jvp` and `grad`; traced once per signature however often it is called."""

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx
import ecliptic.internal as eqxi


def f(x, y):
    return jnp.sin(x) * y + x**2


g = eqxi.noinline(f)
X = jnp.linspace(-1.0, 1.0, 4)
Y = jnp.array(2.0)


def _close(a, b):
    return np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


@pytest.mark.parametrize(
    "transform",
    [
        lambda fn: fn,
        jax.jit,
        lambda fn: jax.vmap(fn, in_axes=(0, None)),
        lambda fn: lambda x, y: jax.jit(jax.vmap(fn, (None, 0)))(x, jnp.stack([y, 1])),
        lambda fn: jax.grad(lambda x, y: jnp.sum(fn(x, y))),
        lambda fn: jax.grad(lambda x, y: jnp.sum(fn(x, y)), argnums=1),
        lambda fn: jax.jit(jax.grad(lambda x, y: jnp.sum(fn(x, y)))),
        lambda fn: jax.vmap(jax.grad(lambda x, y: fn(x, y)), in_axes=(0, None)),
        lambda fn: jax.grad(lambda x, y: jnp.sum(jax.vmap(fn, (0, None))(x, y))),
        lambda fn: lambda x, y: jax.jvp(fn, (x, y), (jnp.ones_like(x), y)),
        lambda fn: jax.jit(lambda x, y: jax.jvp(fn, (x, y), (x, jnp.zeros_like(y)))),
        lambda fn: jax.hessian(lambda x, y: jnp.sum(fn(x, y))),
    ],
)
def test_same_values_as_inline(transform):
    expected = transform(f)(X, Y)
    got = transform(g)(X, Y)
    jax.tree_util.tree_map(_close, got, expected)


def test_traced_once_per_signature():
    traces = []

    @eqxi.noinline
    def h(x, y):
        traces.append(None)
        return x + y

    @jax.jit
    def many(x, y):
        return h(x, jnp.array(1.0)) + h(x, jnp.array(2.0)) + h(y, jnp.array(3.0))

    out = many(jnp.ones(3), jnp.zeros(3))
    assert jnp.array_equal(out, jnp.full(3, 8.0))
    # Once to find the output shape, once to compile: not once per call.
    assert len(traces) == 2


def test_same_abstract_fn_swaps_without_recompiling():
    def abstract(_, x, y):
        return jnp.broadcast_arrays(x, y)[0]

    add = eqxi.noinline(lambda x, y: x + y, abstract)
    mul = eqxi.noinline(lambda x, y: x * y, abstract)
    compiles = []

    @eqx.filter_jit
    def call(fn, x, y):
        compiles.append(None)
        return fn(x, y)

    x, y = jnp.array(3.0), jnp.array(4.0)
    assert call(add, x, y) == 7.0
    assert call(mul, x, y) == 12.0
    assert len(compiles) == 1


def test_static_and_keyword_arguments():
    k = eqxi.noinline(lambda u, n, *, scale: u * n * scale)
    out = jax.jit(lambda u: k(u, 3, scale=jnp.array(2.0)))(X)
    _close(out, X * 6)


def test_pytree_outputs_and_non_array_leaves():
    h = eqxi.noinline(lambda u: (u, {"double": 2 * u, "count": jnp.arange(2)}, "tag"))
    out = eqx.filter_jit(h)(X)
    assert out[2] == "tag"
    _close(out[1]["double"], 2 * X)
    assert out[1]["count"].dtype == jnp.arange(2).dtype


def test_integer_inputs_under_grad():
    h = eqxi.noinline(lambda u, i: u * i.astype(u.dtype))
    grad = jax.grad(lambda u: jnp.sum(h(u, jnp.arange(4))))(X)
    _close(grad, jnp.arange(4.0))


def test_module_as_function_and_grad_wrt_its_weights():
    linear = eqx.nn.Linear(4, 2, key=jr.PRNGKey(0))
    inline_grad = eqx.filter_grad(lambda m: jnp.sum(m(X)))(linear)
    noinline_grad = eqx.filter_grad(lambda m: jnp.sum(eqxi.noinline(m)(X)))(linear)
    _close(noinline_grad.weight, inline_grad.weight)
    _close(noinline_grad.bias, inline_grad.bias)


def test_inside_cond_with_batched_predicate():
    def body(fn, x):
        return lax.cond(x[0] > 0, lambda z: fn(z, Y), lambda z: z, x)

    xs = jnp.stack([X, -X])
    expected = jax.vmap(lambda x: body(f, x))(xs)
    got = jax.jit(jax.vmap(lambda x: body(g, x)))(xs)
    _close(got, expected)


def test_wrapper_is_usable_under_plain_jit_as_static():
    assert jnp.array_equal(jax.jit(g)(X, Y), jax.jit(f)(X, Y))


def test_wrapping_the_same_function_twice_gives_equal_wrappers():
    traces = []

    @eqx.filter_jit
    def call(fn, x):
        traces.append(None)
        return fn(x, Y)

    call(eqxi.noinline(f), X)
    call(eqxi.noinline(f), X)
    assert eqxi.noinline(f) == eqxi.noinline(f)
    assert len(traces) == 1
