import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic as eqx
from ecliptic._module import Module

from .helpers import Affine, make_affine


def test_if_array():
    spec = eqx.if_array(1)
    assert spec(jnp.zeros(2)) == 1 and spec(np.zeros(2)) == 1
    assert spec(1.0) is None and spec("s") is None
    assert jtu.tree_leaves(spec) == [spec]  # not a PyTree
    assert spec == eqx.if_array(1) and hash(spec) == hash(eqx.if_array(1))


def test_vmap_default_maps_arrays_and_broadcasts_the_rest():
    f = eqx.filter_vmap(lambda x, y, s: (x + y, s, x * 0 + y))
    out, s, _ = f(jnp.arange(3.0), 2.0, "tag")
    np.testing.assert_allclose(out, [2.0, 3.0, 4.0])
    assert s == "tag"


def test_vmap_non_array_outputs_unbatched():
    out = eqx.filter_vmap(lambda x: (x, 1.0, "hi", jnp.tanh))(jnp.arange(3.0))
    assert out[1:] == (1.0, "hi", jnp.tanh)
    assert out[0].shape == (3,)


def test_vmap_in_axes_forms():
    x, y = jnp.arange(6.0).reshape(2, 3), jnp.array([10.0, 20.0, 30.0])
    tuple_axes = eqx.filter_vmap(lambda x, y: x + y, in_axes=(1, 0))(x, y)
    np.testing.assert_allclose(tuple_axes, (x + y[None, :]).T)
    by_name = eqx.filter_vmap(lambda x, y: x + y, in_axes=dict(x=1))(x, y)
    np.testing.assert_allclose(by_name, tuple_axes)
    broadcast = eqx.filter_vmap(lambda x, y: x + y, in_axes=(0, None))(x, y)
    np.testing.assert_allclose(broadcast, x + y[None, :])
    callable_spec = eqx.filter_vmap(lambda t: t[0] + t[1], in_axes=eqx.if_array(1))
    np.testing.assert_allclose(callable_spec((x, x)), (2 * x).T)
    prefix = eqx.filter_vmap(lambda d: d["a"] * d["b"], in_axes=({"a": 0, "b": None},))
    np.testing.assert_allclose(prefix({"a": y, "b": jnp.array(2.0)}), 2 * y)


def test_vmap_out_axes():
    x = jnp.ones((3, 2))
    assert eqx.filter_vmap(lambda x: x, out_axes=1)(x).shape == (2, 3)
    assert eqx.filter_vmap(lambda x: x, out_axes=-1)(x).shape == (2, 3)
    both = eqx.filter_vmap(lambda x: (x, jnp.array(1.0)), out_axes=(0, None))(x)
    assert both[0].shape == (3, 2) and both[1].shape == ()


def test_vmap_ensemble_of_modules(getkey):
    keys = jr.split(getkey(), 4)
    ensemble = eqx.filter_vmap(make_affine)(keys)
    assert isinstance(ensemble, Affine)
    assert ensemble.weight.shape == (4, 2, 3) and ensemble.bias.shape == (4, 2)
    assert ensemble.activation is jnp.tanh and ensemble.size == 2
    x = jr.normal(getkey(), (3,))
    same_x = eqx.filter_vmap(lambda m, x: m(x), in_axes=(eqx.if_array(0), None))
    out = same_x(ensemble, x)
    assert out.shape == (4, 2)
    np.testing.assert_allclose(out[1], make_affine(keys[1])(x), rtol=1e-6)
    per_x = eqx.filter_vmap(lambda m, x: m(x))(ensemble, jr.normal(getkey(), (4, 3)))
    assert per_x.shape == (4, 2)


def test_vmap_wraps_module_and_method():
    def f(x):
        """Doc."""
        return x

    v = eqx.filter_vmap(f)
    assert isinstance(v, Module) and v.__name__ == "f" and v.__doc__ == "Doc."
    assert v.__wrapped__ is f

    class M(Module):
        w: jax.Array

        @eqx.filter_vmap
        def scale(self, x):
            return self.w * x

    out = M(jnp.arange(3.0)).scale(jnp.ones(3))
    np.testing.assert_allclose(out, [0.0, 1.0, 2.0])


def test_vmap_axis_size_and_axis_name():
    out = eqx.filter_vmap(lambda: jnp.array(1.0), axis_size=3)()
    np.testing.assert_allclose(out, [1.0, 1.0, 1.0])
    assert eqx.filter_vmap(lambda x: x + 1)(3) == 4  # nothing mapped, static output
    total = eqx.filter_vmap(lambda x: jax.lax.psum(x, "i"), axis_name="i")
    np.testing.assert_allclose(total(jnp.arange(3.0)), [3.0, 3.0, 3.0])


def test_vmap_nested_with_grad_and_jit(getkey):
    model = make_affine(getkey())

    @jax.jit
    def run(xs):
        grad = eqx.filter_grad(lambda m, x: jnp.sum(m(x)))
        inner = eqx.filter_vmap(grad, in_axes=(None, 0))
        return eqx.filter_vmap(inner, in_axes=(None, 0))(model, xs).weight

    assert run(jnp.ones((2, 5, 3))).shape == (2, 5, 2, 3)


def test_vmap_kwargs_at_call_time():
    with pytest.raises(RuntimeError, match=r"keyword arguments at call time.*\('x',\)"):
        eqx.filter_vmap(lambda x: x)(x=jnp.ones(2))


def test_vmap_needs_axis_size():
    with pytest.raises(ValueError, match="Pass `axis_size=...`"):
        eqx.filter_vmap(lambda x: jnp.asarray(x))(3)


def test_vmap_bad_axis_spec():
    with pytest.raises(ValueError, match="got 'a' of type str"):
        eqx.filter_vmap(lambda x: x, in_axes="a")(jnp.ones(2))
    with pytest.raises(ValueError, match="but .* returned 'no'"):
        eqx.filter_vmap(lambda x: x, in_axes=lambda _: "no")(jnp.ones(2))


def test_vmap_in_axes_not_a_prefix():
    with pytest.raises(ValueError, match="to be a PyTree prefix of the arguments"):
        eqx.filter_vmap(lambda x, y: x, in_axes=(0, 0, 0))(jnp.ones(2), jnp.ones(2))


def test_vmap_named_in_axes_unknown():
    with pytest.raises(ValueError, match=r"in_axes` for \('y',\)"):
        eqx.filter_vmap(lambda x: x, in_axes=dict(y=0))(jnp.ones(2))


def test_vmap_mapping_a_non_array():
    with pytest.raises(ValueError, match="leaf that is not an array: 1.0"):
        eqx.filter_vmap(lambda x: x, in_axes=0)(1.0)


def test_vmap_removed_kwargs():
    with pytest.raises(ValueError, match="`default=`, which was removed"):
        eqx.filter_vmap(lambda x: x, default=0)


def test_pmap_single_device_basic():
    f = eqx.filter_pmap(lambda x, s: (x * 2, s))
    out, s = f(jnp.ones((1, 3)), "s")
    np.testing.assert_allclose(out, 2 * np.ones((1, 3)))
    assert s == "s" and f.__wrapped__ is not None
    lowered = f.lower(jnp.ones((1, 3)), "s")
    assert "stablehlo" in lowered.as_text() or "module" in lowered.as_text()
    out2, _ = lowered.compile()(jnp.ones((1, 3)), "s")
    np.testing.assert_allclose(out2, out)
    np.testing.assert_allclose(eqx.filter_pmap(lambda: jnp.ones(2), axis_size=1)(), 1)


def test_pmap_errors():
    with pytest.raises(ValueError, match="to be 'all', 'warn' or 'none', but got 'x'"):
        eqx.filter_pmap(lambda x: x, donate="x")
    with pytest.warns(DeprecationWarning, match="renamed to `donate='all'`"):
        eqx.filter_pmap(lambda x: x, donate="arrays")
    with pytest.raises(ValueError, match="does not take `donate_argnums`"):
        eqx.filter_pmap(lambda x: x, donate_argnums=(0,))
    with pytest.raises(ValueError, match="Pass `axis_size=...`"):
        eqx.filter_pmap(lambda: 1.0)()
    with pytest.raises(RuntimeError, match="keyword arguments at call time"):
        eqx.filter_pmap(lambda x: x)(x=jnp.ones(1))
    with pytest.raises(ValueError, match="must be hashable"):
        eqx.filter_pmap(lambda x, l: x)(jnp.ones(1), {1, 2})


def test_pmap_mapping_a_scalar_names_the_leaf():
    f = eqx.filter_pmap(lambda x: x * 2)
    with pytest.raises(ValueError, match=r"axis 0 of args\[0\].*shape \(\)"):
        f(jnp.array(1.0))
    g = eqx.filter_pmap(lambda t: t["w"] + t["b"])
    with pytest.raises(ValueError, match=r"args\[0\]\['b'\].*shape \(\)") as info:
        g({"w": jnp.ones((1, 2)), "b": jnp.array(0.5)})
    assert "in_axes" in str(info.value)  # how to fix it
    h = eqx.filter_pmap(lambda x: x, in_axes=1)
    with pytest.raises(ValueError, match=r"axis 1 of args\[0\].*shape \(1,\)"):
        h(jnp.ones(1))


def test_vmap_mapping_a_scalar_names_the_leaf():
    f = eqx.filter_vmap(lambda x, y: x + y)
    with pytest.raises(ValueError, match=r"axis 0 of args\[1\].*shape \(\)"):
        f(jnp.ones(3), jnp.array(1.0))
    np.testing.assert_allclose(eqx.filter_vmap(lambda x: x, in_axes=-1)(jnp.ones(2)), 1)


def test_vmap_of_grad_of_filter_jit(getkey):
    filter_jit = eqx.filter_jit
    model, xs = make_affine(getkey()), jr.normal(getkey(), (4, 3))

    @filter_jit
    def loss(m, x):
        return jnp.sum(m(x) ** 2)

    per_example = filter_jit(eqx.filter_vmap(eqx.filter_grad(loss), in_axes=(None, 0)))
    grads = per_example(model, xs)
    assert isinstance(grads, Affine) and grads.weight.shape == (4, 2, 3)
    single = eqx.filter_grad(loss)(model, xs[1])
    np.testing.assert_allclose(grads.weight[1], single.weight, rtol=1e-4, atol=1e-6)
    assert grads.activation is None


def test_clear_caches_empties_the_pmap_cache():
    traces = []

    def f(x):
        traces.append(None)
        return x + 1

    pmapped = eqx.filter_pmap(f)
    pmapped(jnp.ones((1, 2)))
    pmapped(jnp.ones((1, 2)))
    assert len(traces) == 1  # the second call reuses the compiled program
    eqx.clear_caches()
    pmapped(jnp.ones((1, 2)))
    assert len(traces) == 2  # emptied: the function is traced again
