"""Filtered transformations: ecliptic and Equinox give the same results on the same
inputs (Equinox models included: both libraries act on any PyTree)."""

import equinox
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings

import ecliptic


def assert_same(a, b, rtol=1e-6, atol=1e-7):
    """Same structure (None included), same static leaves, close arrays."""
    leaves_a, def_a = jtu.tree_flatten(a, is_leaf=lambda x: x is None)
    leaves_b, def_b = jtu.tree_flatten(b, is_leaf=lambda x: x is None)
    assert def_a == def_b, (def_a, def_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        if isinstance(x, jax.Array | np.ndarray):
            assert isinstance(y, jax.Array | np.ndarray)
            assert x.shape == y.shape and x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        elif isinstance(x, jax.ShapeDtypeStruct):
            assert (x.shape, x.dtype) == (y.shape, y.dtype)
        else:
            assert x == y or x is y, (x, y)


@pytest.fixture
def mlp():
    return equinox.nn.MLP(3, 2, 4, 2, activation=jax.nn.tanh, key=jr.PRNGKey(0))


def _loss(model, x, scale):
    return jnp.sum(model(x) ** 2) * scale


MIXED = {
    "f": jnp.array([1.0, 2.0]),
    "i": jnp.array(3),
    "py": 1.5,
    "np": np.array([0.5], np.float32),
    "s": "tag",
    "fn": jnp.sin,
    "n": None,
}


def _mixed_fn(x, y):
    return jnp.sum(x["fn"](x["f"]) * y) + x["py"] * jnp.sum(x["np"]) + x["i"]


@pytest.mark.parametrize("name", ["filter_grad", "filter_value_and_grad"])
def test_grad_parity(name, mlp):
    x = jnp.array([0.1, -0.2, 0.3])
    ours = getattr(ecliptic, name)(_loss)(mlp, x, 2.0)
    theirs = getattr(equinox, name)(_loss)(mlp, x, 2.0)
    assert_same(ours, theirs)
    y = jnp.array(2.0)
    assert_same(
        getattr(ecliptic, name)(_mixed_fn)(MIXED, y),
        getattr(equinox, name)(_mixed_fn)(MIXED, y),
    )


def test_grad_has_aux_parity(mlp):
    def f(model, x):
        out = model(x)
        return jnp.sum(out), {"out": out, "tag": "t"}

    x = jnp.ones(3)
    assert_same(
        ecliptic.filter_grad(f, has_aux=True)(mlp, x),
        equinox.filter_grad(f, has_aux=True)(mlp, x),
    )
    assert_same(
        ecliptic.filter_value_and_grad(f, has_aux=True)(mlp, x),
        equinox.filter_value_and_grad(f, has_aux=True)(mlp, x),
    )


def test_jvp_parity():
    def f(x, y, s):
        return {"xy": x["f"] * y, "y": y, "c": jnp.arange(2), "s": s, "k": x["i"] * 2}

    primals = (MIXED, jnp.array(3.0), "s")
    t_x = jtu.tree_map(lambda _: None, MIXED)
    t_x["f"] = jnp.array([1.0, 0.5])
    for tangents in [(t_x, None, None), (t_x, jnp.array(2.0), None)]:
        assert_same(
            ecliptic.filter_jvp(f, primals, tangents),
            equinox.filter_jvp(f, primals, tangents),
        )


def test_vjp_parity(mlp):
    x = jnp.ones(3)
    ours_out, ours_fn = ecliptic.filter_vjp(lambda m, x: m(x), mlp, x)
    theirs_out, theirs_fn = equinox.filter_vjp(lambda m, x: m(x), mlp, x)
    assert_same(ours_out, theirs_out)
    ct = jnp.array([1.0, -1.0])
    assert_same(ours_fn(ct), theirs_fn(ct))
    ours = ecliptic.filter_vjp(lambda x: (x["f"] * 2, "aux"), MIXED, has_aux=True)
    theirs = equinox.filter_vjp(lambda x: (x["f"] * 2, "aux"), MIXED, has_aux=True)
    assert ours[2] == theirs[2]
    assert_same(ours[1](jnp.ones(2)), theirs[1](jnp.ones(2)))


@pytest.mark.parametrize("name", ["filter_jacfwd", "filter_jacrev", "filter_hessian"])
def test_jacobian_parity(name):
    def f(x):
        return jnp.sum(x["f"] ** 3) * x["py"] + jnp.sum(x["np"] ** 2)

    assert_same(getattr(ecliptic, name)(f)(MIXED), getattr(equinox, name)(f)(MIXED))

    def g(x):
        return x["f"] ** 2, {"aux": x["f"] + 1}

    assert_same(
        getattr(ecliptic, name)(g, has_aux=True)(MIXED),
        getattr(equinox, name)(g, has_aux=True)(MIXED),
    )


def test_checkpoint_parity(mlp):
    x = jnp.ones(3)

    def via(lib):
        inner = lib.filter_checkpoint(lambda m, x: (m(x), "name"))
        return lib.filter_grad(lambda m: jnp.sum(inner(m, x)[0]))(mlp)

    assert_same(via(ecliptic), via(equinox))


def _vmap_cases():
    x = jnp.arange(6.0).reshape(2, 3)
    y = jnp.array([1.0, 2.0, 3.0])
    add = lambda a, b: a + b  # noqa: E731
    return [
        (add, {}, (x, y[:2, None] * jnp.ones((2, 3)))),
        (add, dict(in_axes=(1, 0)), (x, y)),
        (add, dict(in_axes=(0, None)), (x, y)),
        (add, dict(in_axes=dict(b=None)), (x, y)),
        (add, dict(in_axes=(0, None), out_axes=1), (x, y)),
        (lambda a, s: (a, s, 1.0), {}, (x, "s")),
        (lambda a: (a, jnp.sum(jnp.ones(2))), dict(out_axes=(0, None)), (x,)),
        (lambda: jnp.array(1.0), dict(axis_size=4), ()),
        (lambda a: jax.lax.psum(a, "i"), dict(axis_name="i"), (y,)),
    ]


@pytest.mark.parametrize("case", range(len(_vmap_cases())))
def test_vmap_parity(case):
    fn, kwargs, args = _vmap_cases()[case]
    assert_same(
        ecliptic.filter_vmap(fn, **kwargs)(*args),
        equinox.filter_vmap(fn, **kwargs)(*args),
    )


def test_vmap_ensemble_parity():
    keys = jr.split(jr.PRNGKey(1), 3)
    make = lambda k: equinox.nn.MLP(2, 2, 3, 1, key=k)  # noqa: E731
    ours = ecliptic.filter_vmap(make)(keys)
    theirs = equinox.filter_vmap(make)(keys)
    assert_same(ours, theirs)
    x = jnp.ones(2)
    spec = (ecliptic.if_array(0), None)
    assert_same(
        ecliptic.filter_vmap(lambda m, x: m(x), in_axes=spec)(ours, x),
        equinox.filter_vmap(lambda m, x: m(x), in_axes=(equinox.if_array(0), None))(
            theirs, x
        ),
    )


@settings(max_examples=30, deadline=None)
@given(
    axes=st.lists(st.sampled_from([0, 1, -1, None]), min_size=1, max_size=3),
    out_axis=st.sampled_from([0, 1, -1]),
)
def test_vmap_axes_parity_hypothesis(axes, out_axis):
    if all(a is None for a in axes):
        axes = [0] + axes[1:]
    args = tuple(
        jnp.arange(6.0).reshape(2, 3) + i
        if a is not None and a % 2 == 0
        else jnp.arange(6.0).reshape(3, 2) * (i + 1)
        if a is not None
        else jnp.ones(2)
        for i, a in enumerate(axes)
    )
    # Make every mapped axis have size 2.
    args = tuple(
        x if a is None or x.shape[a] == 2 else x.T
        for x, a in zip(args, axes, strict=True)
    )

    def fn(*xs):
        return sum(jnp.sum(x) for x in xs) * jnp.ones(2), "static"

    ours = ecliptic.filter_vmap(fn, in_axes=tuple(axes), out_axes=(out_axis, None))
    theirs = equinox.filter_vmap(fn, in_axes=tuple(axes), out_axes=(out_axis, None))
    assert_same(ours(*args), theirs(*args))


def test_eval_shape_parity():
    make = lambda k: equinox.nn.MLP(2, 2, 3, 1, key=k)  # noqa: E731
    assert_same(
        ecliptic.filter_eval_shape(make, jr.PRNGKey(0)),
        equinox.filter_eval_shape(make, jr.PRNGKey(0)),
    )


def test_make_jaxpr_parity():
    def f(x, n, *, s):
        return {"y": x * n, "s": s}

    args = (jax.ShapeDtypeStruct((3,), jnp.float32), 2.0)
    ours = ecliptic.filter_make_jaxpr(f)(*args, s="a")
    theirs = equinox.filter_make_jaxpr(f)(*args, s="a")
    assert str(ours[0]) == str(theirs[0])
    assert_same(ours[1:], theirs[1:])


def test_custom_jvp_parity():
    def build(lib):
        @lib.filter_custom_jvp
        def f(x, y, name):
            return x * y

        @f.def_jvp
        def f_jvp(primals, tangents):
            x, y, name = primals
            tx, ty, _ = tangents
            t = 3 * tx if ty is None else 3 * tx + 5 * ty
            return f(x, y, name), t

        return f

    x, y = jnp.array(2.0), jnp.array(4.0)
    for lib_f in [build(ecliptic), build(equinox)]:
        assert lib_f(x, y, "n") == 8.0
    assert_same(
        jax.grad(build(ecliptic), argnums=(0, 1))(x, y, "n"),
        jax.grad(build(equinox), argnums=(0, 1))(x, y, "n"),
    )
    assert_same(
        ecliptic.filter_grad(build(ecliptic))(x, y, "n"),
        equinox.filter_grad(build(equinox))(x, y, "n"),
    )


def test_custom_vjp_parity():
    def build(lib):
        @lib.filter_custom_vjp
        def f(vjp_arg, y):
            return {"o": vjp_arg["w"] * y, "name": vjp_arg["s"]}

        @f.def_fwd
        def f_fwd(perturbed, vjp_arg, y):
            return f(vjp_arg, y), (y, perturbed)

        @f.def_bwd
        def f_bwd(res, g, perturbed, vjp_arg, y):
            y_res, _ = res
            return {"w": g["o"] * y_res * 7, "s": None, "i": None}

        return f

    va = {"w": jnp.array(3.0), "s": "st", "i": jnp.array(1)}

    def loss(lib):
        f = build(lib)
        return lib.filter_grad(lambda va: f(va, jnp.array(2.0))["o"])(va)

    assert_same(loss(ecliptic), loss(equinox))


def test_closure_convert_parity():
    def run(lib):
        def outer(z):
            k = z * 2
            g = lib.filter_closure_convert(lambda a, n: a * k + n, jnp.array(1.0), 2)
            return g(jnp.array(3.0), 2), g.out_struct

        return jax.value_and_grad(lambda z: outer(z)[0])(jnp.array(1.5)), outer(1.5)[1]

    (ours_v, ours_g), ours_struct = run(ecliptic)
    (theirs_v, theirs_g), theirs_struct = run(equinox)
    assert_same((ours_v, ours_g), (theirs_v, theirs_g))
    assert (ours_struct.shape, ours_struct.dtype) == (
        theirs_struct.shape,
        theirs_struct.dtype,
    )


def test_pure_callback_parity():
    def run(lib):
        cb = lambda x, tag: ({"y": np.asarray(x) * 2, "tag": tag})  # noqa: E731
        spec = {"y": jax.ShapeDtypeStruct((2,), jnp.float32), "tag": "t"}
        return jax.jit(
            lambda x: lib.filter_pure_callback(cb, x, "t", result_shape_dtypes=spec)[
                "y"
            ]
        )(jnp.array([1.0, 2.0]))

    assert_same(run(ecliptic), run(equinox))


def test_shard_parity():
    x = {"a": jnp.ones(3), "s": "x"}
    device = jax.devices()[0]
    assert_same(ecliptic.filter_shard(x, device), equinox.filter_shard(x, device))


def test_pmap_parity_one_device():
    fn = lambda x, s: (x * 2, s)  # noqa: E731
    args = (jnp.ones((1, 3)), "s")
    assert_same(ecliptic.filter_pmap(fn)(*args), equinox.filter_pmap(fn)(*args))


@pytest.mark.parametrize(
    "call",
    [
        lambda lib: lib.filter_vmap(lambda x: x)(x=jnp.ones(2)),
        lambda lib: lib.filter_vmap(lambda x: jnp.asarray(x))(1),
        lambda lib: lib.filter_vmap(lambda x: x, in_axes=dict(y=0))(jnp.ones(2)),
        lambda lib: lib.filter_vmap(lambda x: x, in_axes="a")(jnp.ones(2)),
        lambda lib: lib.filter_grad(lambda x: x)(x=jnp.ones(())),
        lambda lib: lib.filter_grad(lambda x: x, argnums=0),
        lambda lib: lib.filter_jvp(lambda x: x, (1.0, 2.0), (1.0,)),
        lambda lib: lib.filter_pmap(lambda x: x, donate="bad"),
    ],
)
def test_error_types_parity(call):
    with pytest.raises(Exception) as theirs:
        call(equinox)
    with pytest.raises(type(theirs.value), match="ecliptic"):
        call(ecliptic)


def test_ensemble_of_library_mlps_parity():
    keys = jr.split(jr.PRNGKey(3), 4)
    ours = ecliptic.filter_vmap(lambda k: ecliptic.nn.MLP(3, 2, 4, 1, key=k))(keys)
    theirs = equinox.filter_vmap(lambda k: equinox.nn.MLP(3, 2, 4, 1, key=k))(keys)
    ours_leaves = jtu.tree_leaves(ours)
    theirs_leaves = jtu.tree_leaves(theirs)
    assert len(ours_leaves) == len(theirs_leaves)
    for a, b in zip(ours_leaves, theirs_leaves, strict=True):
        if isinstance(a, jax.Array):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    x = jnp.linspace(-1.0, 1.0, 3)
    ours_out = ecliptic.filter_vmap(lambda m: m(x))(ours)
    theirs_out = equinox.filter_vmap(lambda m: m(x))(theirs)
    np.testing.assert_allclose(ours_out, theirs_out, rtol=1e-5, atol=1e-6)


def test_train_step_parity():
    import optax

    optim = optax.sgd(0.1)

    def make_step(lib):
        @lib.filter_jit
        def step(model, opt_state, x, y):
            def loss(m):
                pred = jax.vmap(m)(x)
                return jnp.mean((pred - y) ** 2)

            value, grads = lib.filter_value_and_grad(loss)(model)
            params = lib.filter(model, lib.is_inexact_array)
            updates, opt_state = optim.update(grads, opt_state, params)
            return value, lib.apply_updates(model, updates), opt_state

        return step

    x = jr.normal(jr.PRNGKey(5), (16, 3))
    y = jnp.sin(x[:, :2])
    results = {}
    for lib in (ecliptic, equinox):
        step = make_step(lib)
        model = lib.nn.MLP(3, 2, 8, 1, key=jr.PRNGKey(7))
        opt_state = optim.init(lib.filter(model, lib.is_inexact_array))
        losses = []
        for _ in range(5):
            value, model, opt_state = step(model, opt_state, x, y)
            losses.append(float(value))
        results[lib.__name__] = losses
    assert results["ecliptic"][-1] < results["ecliptic"][0]
    np.testing.assert_allclose(results["ecliptic"], results["equinox"], rtol=1e-5)
