"""Filtered primitives (`filter_primitive_*`, `materialise_zeros`) and `create_vprim`,
each under `jit`, `vmap`, `jvp` and `grad`."""

import jax
import jax.extend.core
import jax.interpreters.ad as ad
import jax.interpreters.batching as batching
import jax.interpreters.mlir as mlir
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

import ecliptic as eqx
import ecliptic.internal as eqxi


# A primitive on PyTrees: `scale((x, factor, tag)) -> {"y": x * factor, "tag": tag}`,
# where `x` is an array and `factor` a Python float (static).


def _scale(inputs):
    x, factor, tag = inputs
    return {"y": x * factor, "tag": tag}


@eqxi.filter_primitive_def
def _scale_impl(inputs):
    return _scale(inputs)


@eqxi.filter_primitive_def
def _scale_abstract(inputs):
    x, _, tag = inputs
    return {"y": jax.core.ShapedArray(x.shape, x.dtype), "tag": tag}


@eqxi.filter_primitive_jvp
def _scale_jvp(primals, tangents):
    (_, factor, tag), (tx, t_factor, t_tag) = primals[0], tangents[0]
    assert t_factor is None and t_tag is None  # static leaves have no tangent
    out = eqxi.filter_primitive_bind(scale_p, primals[0])
    t_out = (
        None if tx is None else eqxi.filter_primitive_bind(scale_p, (tx, factor, tag))
    )
    return out, {"y": None if t_out is None else t_out["y"], "tag": None}


@eqxi.filter_primitive_transpose
def _scale_transpose(inputs, cts_out):
    x, factor, tag = inputs[0]
    assert ad.is_undefined_primal(x)
    ct = cts_out["y"]
    ct_x = None if ct is None else ct * factor
    return ((ct_x, None, None),)


@eqxi.filter_primitive_batching
def _scale_batch(inputs, batch_axes):
    (axis, _, _) = batch_axes[0]
    return eqxi.filter_primitive_bind(scale_p, inputs[0]), {"y": axis, "tag": None}


scale_p = jax.extend.core.Primitive("test_scale")
scale_p.multiple_results = True
scale_p.def_impl(_scale_impl)
scale_p.def_abstract_eval(_scale_abstract)
ad.primitive_jvps[scale_p] = _scale_jvp
ad.primitive_transposes[scale_p] = _scale_transpose
batching.primitive_batchers[scale_p] = _scale_batch
mlir.register_lowering(scale_p, mlir.lower_fun(_scale_impl, multiple_results=True))


def scale(x, factor=3.0, tag="t"):
    return eqxi.filter_primitive_bind(scale_p, (x, factor, tag))


X = jnp.arange(4.0)


def test_filter_primitive_plain_and_jit():
    out = scale(X)
    assert out["tag"] == "t"
    assert jnp.array_equal(out["y"], 3.0 * X)
    out = eqx.filter_jit(lambda x: scale(x, 2.0, "u"))(X)
    assert out["tag"] == "u"
    assert jnp.array_equal(out["y"], 2.0 * X)


def test_filter_primitive_vmap():
    xs = jnp.arange(6.0).reshape(2, 3)
    out = jax.vmap(lambda x: scale(x)["y"])(xs)
    assert jnp.array_equal(out, 3.0 * xs)
    out = jax.vmap(lambda x: scale(x)["y"], in_axes=1)(xs)
    assert jnp.array_equal(out, 3.0 * xs.T)


def test_filter_primitive_jvp_and_grad():
    _, t_out = jax.jvp(lambda x: scale(x)["y"], (X,), (jnp.ones(4),))
    assert jnp.array_equal(t_out, jnp.full(4, 3.0))
    grad = jax.grad(lambda x: jnp.sum(scale(x, 5.0)["y"]))(X)
    assert jnp.array_equal(grad, jnp.full(4, 5.0))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(scale(x, 5.0)["y"])))(X)
    assert jnp.array_equal(grad, jnp.full(4, 5.0))


def test_filter_primitive_bind_needs_multiple_results():
    prim = jax.extend.core.Primitive("single")
    with pytest.raises(ValueError, match="multiple_results"):
        eqxi.filter_primitive_bind(prim, X)


def test_materialise_zeros():
    zeros = eqxi.materialise_zeros(X, None)
    assert jnp.array_equal(zeros, jnp.zeros(4))
    assert eqxi.materialise_zeros(X, X) is X
    assert eqxi.materialise_zeros("static", None) is None
    ints = eqxi.materialise_zeros(jnp.arange(2), None)
    assert ints.dtype == jax.dtypes.float0
    struct = jax.ShapeDtypeStruct((2,), jnp.float32)
    assert eqxi.materialise_zeros(struct, None) is None
    assert eqxi.materialise_zeros(struct, None, allow_struct=True).shape == (2,)


# create_vprim: `double(x) = [2 x]`, with no batching rule written.


def _double_impl(x):
    return [2 * x]


def _double_abstract(x):
    return [x]


def _double_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    out = double_p.bind(x)
    if type(t) is ad.Zero:
        return out, [t]
    return out, double_p.bind(t)


def _double_transpose(cts, x):
    (ct,) = cts
    if type(ct) is ad.Zero:
        return [None]
    return double_p.bind(ct)


double_p = eqxi.create_vprim(
    "test_double", _double_impl, _double_abstract, _double_jvp, _double_transpose
)


def double(x):
    (out,) = double_p.bind(x)
    return out


def test_vprim_plain_jit():
    assert jnp.array_equal(double(X), 2 * X)
    assert jnp.array_equal(jax.jit(double)(X), 2 * X)


def test_vprim_vmap_and_nested_vmap():
    xs = jnp.arange(6.0).reshape(2, 3)
    assert jnp.array_equal(jax.vmap(double)(xs), 2 * xs)
    assert jnp.array_equal(jax.vmap(double, in_axes=1)(xs), 2 * xs.T)
    assert jnp.array_equal(jax.vmap(jax.vmap(double))(xs), 2 * xs)
    assert jnp.array_equal(jax.jit(jax.vmap(double))(xs), 2 * xs)


def test_vprim_jvp_and_grad():
    _, t_out = jax.jvp(double, (X,), (jnp.ones(4),))
    assert jnp.array_equal(t_out, jnp.full(4, 2.0))
    grad = jax.grad(lambda x: jnp.sum(double(x)))(X)
    assert jnp.array_equal(grad, jnp.full(4, 2.0))


def test_vprim_grad_under_vmap():
    xs = jnp.arange(6.0).reshape(2, 3)
    grads = jax.vmap(jax.grad(lambda x: jnp.sum(double(x))))(xs)
    assert jnp.array_equal(grads, jnp.full((2, 3), 2.0))
    _, t_out = jax.vmap(lambda x: jax.jvp(double, (x,), (x,)))(xs)
    assert jnp.array_equal(t_out, 2 * xs)


def test_vprim_transpose_of_unbatched_input_sums_over_batch():
    # `x` is shared by the batch (unbatched), the cotangent is batched.
    def f(x, scales):
        return jnp.sum(jax.vmap(lambda s: s * double(x))(scales))

    grad = jax.grad(f)(X, jnp.array([1.0, 2.0]))
    assert jnp.array_equal(grad, jnp.full(4, 6.0))


def test_vprim_static_tree_leaves_are_untouched():
    tree = {"a": X}
    out = jtu.tree_map(double, tree)
    assert jnp.array_equal(out["a"], 2 * X)
