import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic as eqx
from ecliptic._module import Module

from .helpers import Affine, make_affine


def _loss(model, x):
    return jnp.sum(model(x) ** 2)


def _manual_grad(model, x):
    def f(w, b):
        return _loss(Affine(w, b, model.activation, model.size), x)

    return jax.grad(f, argnums=(0, 1))(model.weight, model.bias)


def test_grad_of_module_matches_jax(getkey):
    model, x = make_affine(getkey()), jr.normal(getkey(), (3,))
    grads = eqx.filter_grad(_loss)(model, x)
    gw, gb = _manual_grad(model, x)
    assert isinstance(grads, Affine)
    np.testing.assert_allclose(grads.weight, gw, rtol=1e-6)
    np.testing.assert_allclose(grads.bias, gb, rtol=1e-6)
    # Non-arrays get `None`; static fields keep their value in the structure.
    assert grads.activation is None and grads.size is None
    assert grads.use_bias is True


def test_grad_only_inexact_arrays_of_first_argument():
    x = {
        "f": jnp.array(2.0),
        "i": jnp.array(3),
        "py": 4.0,
        "np": np.array(5.0, dtype=np.float32),
        "s": "name",
        "n": None,
    }

    def f(x, y):
        return x["f"] ** 2 * y + x["py"] * x["np"] + x["i"].astype(jnp.float32)

    grads = eqx.filter_grad(f)(x, jnp.array(3.0))
    assert grads["i"] is None and grads["py"] is None and grads["s"] is None
    assert grads["n"] is None
    np.testing.assert_allclose(grads["f"], 12.0)
    np.testing.assert_allclose(grads["np"], 4.0)


def test_value_and_grad_and_has_aux():
    def f(x, k):
        return jnp.sum(x["a"] ** 2) * k, {"aux": x["a"] + 1, "tag": "t"}

    x = {"a": jnp.array([1.0, 2.0])}
    (value, aux), grads = eqx.filter_value_and_grad(f, has_aux=True)(x, 3.0)
    np.testing.assert_allclose(value, 15.0)
    assert aux["tag"] == "t"
    np.testing.assert_allclose(aux["aux"], [2.0, 3.0])
    np.testing.assert_allclose(grads["a"], [6.0, 12.0])
    grads2, aux2 = eqx.filter_grad(has_aux=True)(f)(x, 3.0)
    np.testing.assert_allclose(grads2["a"], grads["a"])
    assert aux2["tag"] == "t"
    value3, grads3 = eqx.filter_value_and_grad(lambda x: f(x, 1.0)[0])(x)
    np.testing.assert_allclose(value3, 5.0)
    np.testing.assert_allclose(grads3["a"], [2.0, 4.0])


def test_grad_kwargs_not_differentiated_and_passed_through():
    def f(x, *, scale):
        return x * scale

    assert eqx.filter_grad(f)(jnp.array(1.0), scale=jnp.array(4.0)) == 4.0


def test_grad_first_argument_must_be_positional():
    f = eqx.filter_grad(lambda x: x)
    with pytest.raises(TypeError, match="keyword arguments only .x=...."):
        f(x=jnp.array(1.0))
    with pytest.raises(TypeError, match="called with no arguments"):
        f()


def test_grad_argnums_rejected():
    with pytest.raises(ValueError, match=r"do not take `argnums` \(got argnums=1\)"):
        eqx.filter_grad(lambda x, y: x, argnums=1)
    with pytest.raises(ValueError, match="pack them into a tuple"):
        eqx.filter_value_and_grad(lambda x, y: x, argnums=(0, 1))


def test_grad_removed_kwargs_rejected():
    with pytest.raises(ValueError, match="`filter_spec=`, which was removed"):
        eqx.filter_grad(lambda x: x, filter_spec=None)


def test_grad_wrapper_is_module_with_name_and_doc():
    def my_loss(x):
        """Docstring."""
        return x

    g = eqx.filter_grad(my_loss)
    assert g.__name__ == "my_loss" and g.__doc__ == "Docstring."
    assert g.__wrapped__ is my_loss
    leaves = jtu.tree_leaves(g)
    assert my_loss in leaves
    # A Module `fun` is part of the wrapper's PyTree, so its arrays are leaves.
    model = make_affine(jr.PRNGKey(0))
    assert any(leaf is model.weight for leaf in jtu.tree_leaves(eqx.filter_grad(model)))


def test_grad_as_method_binds_self():
    class M(Module):
        w: jax.Array

        @eqx.filter_grad
        def grad_of(self, x):
            return jnp.sum(self.w * x)

    m = M(jnp.array([1.0, 2.0]))
    grads = m.grad_of(jnp.array([3.0, 4.0]))
    np.testing.assert_allclose(grads.w, [3.0, 4.0])


def test_grad_under_jit_and_vmap(getkey):
    model, xs = make_affine(getkey()), jr.normal(getkey(), (4, 3))
    per_example = eqx.filter_vmap(eqx.filter_grad(_loss), in_axes=(None, 0))

    @jax.jit  # filter_jit lives elsewhere; jax.jit on the arrays only here
    def run(w, b, xs):
        return per_example(Affine(w, b, model.activation, model.size), xs)

    grads = run(model.weight, model.bias, xs)
    assert grads.weight.shape == (4, 2, 3)
    gw, _ = _manual_grad(model, xs[2])
    # An entry can be small by cancellation (a saturated activation: 1 - tanh^2), so
    # the absolute tolerance is float32 rounding at the scale of the largest entries
    # (about 1), not of that entry.
    np.testing.assert_allclose(grads.weight[2], gw, rtol=1e-4, atol=1e-5)


def test_jvp_symbolic_zeros_and_static_outputs():
    def f(x, y, s):
        return {"xy": x * y, "y": y, "c": jnp.arange(2), "s": s, "i": x.astype(int)}

    primals = (jnp.array(2.0), jnp.array(3.0), "tag")
    out, t_out = eqx.filter_jvp(f, primals, (jnp.array(1.0), None, None))
    np.testing.assert_allclose(out["xy"], 6.0)
    assert out["s"] == "tag"
    np.testing.assert_allclose(t_out["xy"], 3.0)
    assert t_out["y"] is None and t_out["c"] is None and t_out["s"] is None
    assert t_out["i"] is None


def test_jvp_kwargs_and_python_float_tangent():
    out, t_out = eqx.filter_jvp(lambda x, *, k: x * k, (3.0,), (1.0,), k=jnp.array(2.0))
    np.testing.assert_allclose(out, 6.0)
    np.testing.assert_allclose(t_out, 2.0)


def test_jvp_no_tangents_gives_all_none():
    out, t_out = eqx.filter_jvp(lambda x: x + 1, (jnp.array(1.0),), (None,))
    np.testing.assert_allclose(out, 2.0)
    assert t_out is None


def test_jvp_structure_mismatch():
    with pytest.raises(ValueError, match="same PyTree structure as `primals`"):
        eqx.filter_jvp(lambda x, y: x, (1.0, 2.0), (1.0,))


def test_vjp_with_and_without_aux():
    def f(x, y):
        return {"out": x["w"] * y, "name": x["name"]}, "aux"

    x = {"w": jnp.array(3.0), "name": "n", "i": jnp.array(1)}
    out, vjp_fn, aux = eqx.filter_vjp(f, x, jnp.array(2.0), has_aux=True)
    assert aux == "aux" and out["name"] == "n"
    ct_x, ct_y = vjp_fn({"out": jnp.array(1.0), "name": None})
    np.testing.assert_allclose(ct_x["w"], 2.0)
    np.testing.assert_allclose(ct_y, 3.0)
    assert ct_x["name"] is None and ct_x["i"] is None
    out2, vjp_fn2 = eqx.filter_vjp(lambda x: f(x, 2.0)[0], x)
    (ct,) = vjp_fn2({"out": jnp.array(1.0), "name": None})
    np.testing.assert_allclose(ct["w"], 2.0)


def test_jacfwd_jacrev_hessian():
    x = {"a": jnp.array([1.0, 2.0]), "k": 3, "n": jnp.array(1)}

    def f(x):
        return x["a"] ** 3 * x["k"]

    want = jnp.diag(3 * x["k"] * x["a"] ** 2)
    for jac in (eqx.filter_jacfwd(f), eqx.filter_jacrev(f)):
        out = jac(x)
        np.testing.assert_allclose(out["a"], want)
        assert out["k"] is None and out["n"] is None
    hess = eqx.filter_hessian(lambda x: jnp.sum(f(x)))(x)
    np.testing.assert_allclose(hess["a"]["a"], jnp.diag(6 * x["k"] * x["a"]))
    jac, aux = eqx.filter_jacrev(lambda x: (f(x), "aux"), has_aux=True)(x)
    assert aux == "aux"
    np.testing.assert_allclose(jac["a"], want)
    _, aux = eqx.filter_hessian(lambda x: (jnp.sum(f(x)), 1.0), has_aux=True)(x)
    assert aux == 1.0
    # Non-array aux also works in forward mode (Equinox fails here: vmap of a str).
    _, aux = eqx.filter_jacfwd(lambda x: (f(x), ("aux", x["a"])), has_aux=True)(x)
    assert aux[0] == "aux"
    np.testing.assert_allclose(aux[1], x["a"])
    assert eqx.filter_jacfwd(f).__wrapped__ is f


def test_checkpoint_values_gradients_and_static_outputs():
    calls = []

    @eqx.filter_checkpoint
    def f(x, name):
        calls.append(name)
        return jnp.sin(x) * 2, name

    def loss(x):
        y, name = f(x, "layer")
        assert name == "layer"
        return jnp.sum(y)

    x = jnp.array([0.5, 1.0])
    np.testing.assert_allclose(jax.grad(loss)(x), 2 * jnp.cos(x), rtol=1e-6)
    assert calls and set(calls) == {"layer"}
    policy = jax.checkpoint_policies.nothing_saveable
    g = eqx.filter_checkpoint(policy=policy, prevent_cse=False)(lambda x: x**2)
    np.testing.assert_allclose(jax.grad(g)(jnp.array(3.0)), 6.0)
    jaxpr = jax.make_jaxpr(jax.grad(loss))(x)
    assert "remat" in str(jaxpr) or "checkpoint" in str(jaxpr)


def test_grad_forwards_gradkwargs():
    g = eqx.filter_grad(lambda z: z * z, holomorphic=True)(jnp.array(1.0 + 1.0j))
    np.testing.assert_allclose(g, 2.0 + 2.0j)


_LEAVES = st.sampled_from(
    [
        ("f32", lambda: jnp.array([1.0, 2.0])),
        ("c64", lambda: jnp.array(1.0 + 0.5j)),
        ("np32", lambda: np.array(0.5, np.float32)),
        ("i32", lambda: jnp.array(3)),
        ("bool", lambda: jnp.array(True)),
        ("py_float", lambda: 1.5),
        ("py_int", lambda: 2),
        ("str", lambda: "s"),
        ("fn", lambda: jnp.sin),
        ("none", lambda: None),
    ]
)


@settings(max_examples=30, deadline=None)
@given(st.lists(_LEAVES, min_size=1, max_size=6), st.booleans())
def test_grad_none_exactly_at_non_inexact_leaves(kinds, as_tuple):
    leaves = [make() for _, make in kinds]
    x = tuple(leaves) if as_tuple else {f"k{i}": v for i, v in enumerate(leaves)}

    def f(x):
        total = jnp.array(0.0)
        for leaf in jtu.tree_leaves(x):
            if eqx.is_inexact_array(leaf):
                total = total + jnp.sum(jnp.real(leaf) ** 2)
        return total

    grads = eqx.filter_grad(f)(x)
    assert jtu.tree_structure(grads, is_leaf=lambda v: v is None) == (
        jtu.tree_structure(x, is_leaf=lambda v: v is None)
    )
    flat_x = jtu.tree_leaves(x, is_leaf=lambda v: v is None)
    flat_g = jtu.tree_leaves(grads, is_leaf=lambda v: v is None)
    for leaf, g in zip(flat_x, flat_g, strict=True):
        if eqx.is_inexact_array(leaf) and not jnp.iscomplexobj(leaf):
            np.testing.assert_allclose(g, 2 * np.asarray(leaf), rtol=1e-6)
        elif not eqx.is_inexact_array(leaf):
            assert g is None
