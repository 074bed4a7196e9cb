import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic as eqx


def _make_call():
    @eqx.filter_custom_jvp
    def call(x, y, *, fn):
        return fn(x, y)

    seen = []

    @call.def_jvp
    def call_jvp(primals, tangents, *, fn):
        x, y = primals
        tx, ty = tangents
        seen.append((tx is None, ty is None))
        out = call(x, y, fn=fn)
        t_out = 10 * tx if ty is None else 10 * tx + 100 * ty
        return out, t_out

    return call, seen


def test_custom_jvp_uses_rule_and_none_for_symbolic_zeros():
    call, seen = _make_call()
    fn = lambda a, b: a * b  # noqa: E731
    x, y = jnp.array(2.0), jnp.array(3.0)
    np.testing.assert_allclose(call(x, y, fn=fn), 6.0)
    np.testing.assert_allclose(eqx.filter_grad(call)(x, y, fn=fn), 10.0)
    assert seen[-1] == (False, True)  # y not differentiated -> None
    gx, gy = jax.grad(lambda x, y: call(x, y, fn=fn), argnums=(0, 1))(x, y)
    np.testing.assert_allclose((gx, gy), (10.0, 100.0))
    assert call.__name__ == "call"


def test_custom_jvp_non_array_and_int_args():
    @eqx.filter_custom_jvp
    def f(x, n, name):
        return x * n

    @f.def_jvp
    def f_jvp(primals, tangents):
        x, n, name = primals
        tx, tn, tname = tangents
        assert tn is None and tname is None and name == "nm"
        return f(x, n, name), 7 * tx

    np.testing.assert_allclose(jax.grad(f)(jnp.array(1.0), jnp.array(2), "nm"), 7.0)


def test_custom_jvp_kwarg_array_tangent():
    @eqx.filter_custom_jvp
    def f(x, *, k):
        return x * k

    @f.def_jvp
    def f_jvp(primals, tangents, *, k):
        return f(*primals, k=k), tangents[0] * k

    with pytest.raises(ValueError, match=r"keyword argument\(s\) \['k'\] of `.*\.f`"):
        jax.grad(lambda k: f(jnp.array(1.0), k=k))(jnp.array(2.0))


def test_custom_jvp_deprecated_defjvp_and_defjvps():
    @eqx.filter_custom_jvp
    def f(x, y):
        return x * y

    def rule(primals, tangents):
        tx, ty = tangents
        assert ty is not None  # materialised zeros
        return f(*primals), 3 * tx + ty

    with pytest.warns(UserWarning, match="defjvp` is deprecated"):
        f.defjvp(rule)
    np.testing.assert_allclose(jax.grad(f)(jnp.array(1.0), jnp.array(2.0)), 3.0)
    with pytest.raises(NotImplementedError, match="does not implement `defjvps`"):
        f.defjvps(None)


def _make_custom_vjp():
    @eqx.filter_custom_vjp
    def f(vjp_arg, y, tag):
        return {"out": vjp_arg["w"] * y, "tag": tag, "count": jnp.array(1)}

    record = {}

    @f.def_fwd
    def f_fwd(perturbed, vjp_arg, y, tag):
        record["perturbed"] = perturbed
        return f(vjp_arg, y, tag), (y, "res")

    @f.def_bwd
    def f_bwd(residuals, grad_obj, perturbed, vjp_arg, y, tag):
        y_res, name = residuals
        assert name == "res" and tag == "t"
        record["grad_obj"] = grad_obj
        return {"w": grad_obj["out"] * y_res * 10, "k": None, "n": None, "v": None}

    return f, record


def test_custom_vjp_rule_perturbed_and_grad_obj():
    f, record = _make_custom_vjp()
    va = {"w": jnp.array(3.0), "k": "static", "n": jnp.array(2), "v": jnp.array(1.0)}
    out = f(va, jnp.array(2.0), "t")
    assert out["tag"] == "t"
    np.testing.assert_allclose(out["out"], 6.0)

    def loss(w):
        return f({**va, "w": w}, jnp.array(2.0), "t")["out"]

    np.testing.assert_allclose(jax.grad(loss)(jnp.array(3.0)), 20.0)
    assert record["perturbed"] == {"w": True, "k": False, "n": False, "v": False}
    assert record["grad_obj"]["tag"] is None and record["grad_obj"]["count"] is None
    grads = eqx.filter_grad(lambda va: f(va, jnp.array(2.0), "t")["out"])(va)
    np.testing.assert_allclose(grads["w"], 20.0)
    assert record["perturbed"]["v"] is True
    np.testing.assert_allclose(grads["v"], 0.0)  # `None` from bwd -> zero


def test_custom_vjp_args_are_not_differentiable():
    f, _ = _make_custom_vjp()
    va = {"w": jnp.array(3.0), "k": "s", "n": jnp.array(2), "v": jnp.array(1.0)}
    with pytest.raises(RuntimeError, match="only differentiates its first argument"):
        jax.grad(lambda y: f(va, y, "t")["out"])(jnp.array(2.0))


def test_custom_vjp_wrong_gradient_structure():
    @eqx.filter_custom_vjp
    def f(x):
        return x["a"] * 2

    f.def_fwd(lambda perturbed, x: (f(x), None))
    f.def_bwd(lambda res, g, perturbed, x: (g, g))
    with pytest.raises(RuntimeError, match="gradient with the structure of `vjp_arg`"):
        jax.grad(lambda a: f({"a": a}))(jnp.array(1.0))


def test_custom_vjp_called_before_rules():
    @eqx.filter_custom_vjp
    def f(x):
        return x

    with pytest.raises(RuntimeError, match=r"`\.def_fwd` has not been called yet"):
        f(jnp.array(1.0))
    f.def_fwd(lambda perturbed, x: (x, None))
    with pytest.raises(RuntimeError, match=r"`\.def_bwd` has not been called yet"):
        f(jnp.array(1.0))


def test_custom_vjp_deprecated_defvjp():
    @eqx.filter_custom_vjp
    def f(x, y):
        return x * y

    def fwd(x, y):
        return f(x, y), y

    def bwd(res, g, x, y):
        return g * res * 2

    with pytest.warns(UserWarning, match="defvjp` is deprecated"):
        f.defvjp(fwd, bwd)
    np.testing.assert_allclose(jax.grad(f)(jnp.array(1.0), jnp.array(3.0)), 6.0)


def test_closure_convert_hoists_closed_over_tracers():
    @jax.grad
    def outer(z):
        scale = z * 2
        g = eqx.filter_closure_convert(lambda a, n: a * scale + n, jnp.array(1.0), 2)
        assert any(leaf is scale for leaf in jtu.tree_leaves(g))
        assert g.out_struct.shape == ()
        assert g.in_struct[0][1] == 2
        return g(jnp.array(3.0), 2)

    np.testing.assert_allclose(outer(1.0), 6.0)


def test_closure_convert_int_arrays_hoisted_and_weak_types_ignored():
    k = jnp.array(3)
    g = eqx.filter_closure_convert(lambda a: a * k, jnp.array(1))
    assert any(leaf is k for leaf in jtu.tree_leaves(g))
    assert int(g(jnp.array(2, dtype=jnp.int32))) == 6


def test_closure_convert_trivial_function():
    def f(a, *, name):
        return a + 1, name

    g = eqx.filter_closure_convert(f, jnp.zeros(2), name="n")
    out, name = g(jnp.ones(2), name="n")
    np.testing.assert_allclose(out, 2.0)
    assert name == "n"
    assert g.out_struct[0].shape == (2,) and g.out_struct[1] == "n"


def test_closure_convert_checks_inputs():
    k = jnp.array(2.0)
    g = eqx.filter_closure_convert(lambda a, s: a * k, jnp.zeros(2), "s")
    with pytest.raises(ValueError, match="array arguments of shapes/dtypes"):
        g(jnp.zeros(3), "s")
    with pytest.raises(ValueError, match="expected the non-array arguments"):
        g(jnp.zeros(2), "other")


def test_custom_vjp_under_vmap_and_jit():
    f, _ = _make_custom_vjp()
    va = {"w": jnp.arange(3.0), "k": "s", "n": jnp.array([1, 2, 3]), "v": jnp.ones(3)}

    def loss(va, y):
        return f(va, y, "t")["out"]

    grads = eqx.filter_vmap(eqx.filter_grad(loss))(va, jnp.arange(3.0))
    np.testing.assert_allclose(grads["w"], 10 * np.arange(3.0))
    assert grads["k"] is None and grads["n"] is None
    jitted = jax.jit(
        lambda w, y: jax.vmap(jax.grad(lambda w, y: loss({**va, "w": w}, y)))(w, y)
    )
    np.testing.assert_allclose(jitted(jnp.arange(3.0), jnp.ones(3)), 10 * np.ones(3))
