"""filter_jit, error_if and the debug tools behave as Equinox's on the same code."""

import equinox
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic


LIBS = [equinox, ecliptic]
_ERRORS = (
    equinox.EquinoxRuntimeError,
    ecliptic.EquinoxRuntimeError,
    jax.errors.JaxRuntimeError,
    ValueError,
)


def _same(a, b):
    """Same structure, same non-array leaves, same array values/dtypes."""
    la, ta = jtu.tree_flatten(a)
    lb, tb = jtu.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, jax.Array):
            assert isinstance(y, jax.Array) and x.dtype == y.dtype
            np.testing.assert_allclose(x, y, rtol=1e-6)
        else:
            assert type(x) is type(y) and x == y


def _make_body():
    # A fresh function per example: Equinox shares a trace between equal statics of
    # different types (0 and False); ecliptic does not (see test_jit.py).
    def body(x, n, s, pair):
        y = x * n if type(n) is int else x
        return {"y": y + pair[0], "s": s * 2, "shape": x.shape, "n": n, "none": None}

    return body


_statics = st.one_of(st.integers(-3, 3), st.booleans(), st.sampled_from(["a", "bc"]))


@settings(max_examples=20, deadline=None)
@given(n=_statics, s=st.sampled_from(["p", "q"]), k=st.integers(1, 3))
def test_mixed_static_and_dynamic(n, s, k):
    x = jnp.arange(float(k))
    pair = (jnp.float32(2.0), "tag")
    body = _make_body()
    outs = [lib.filter_jit(body)(x, n, s, pair) for lib in LIBS]
    _same(*outs)
    kw = [lib.filter_jit(body)(x, n=n, s=s, pair=pair) for lib in LIBS]
    _same(*kw)
    _same(outs[0], kw[1])


def _model(lib):
    class Affine(lib.Module):
        weight: jax.Array
        bias: jax.Array
        act: object = lib.field(static=True, default=jnp.tanh)

        def __call__(self, x, scale=1.0):
            return self.act(self.weight @ x + self.bias) * scale

    return Affine(jnp.arange(9.0).reshape(3, 3) / 9, jnp.ones(3))


def test_module_as_fun_and_method():
    x = jnp.linspace(-1.0, 1.0, 3)
    models = [_model(lib) for lib in LIBS]
    _same(*[lib.filter_jit(m)(x) for lib, m in zip(LIBS, models, strict=True)])
    _same(
        *[
            lib.filter_jit(m.__call__)(x, 2.0)
            for lib, m in zip(LIBS, models, strict=True)
        ]
    )
    # The wrapper is a PyTree holding the model's arrays in both libraries.
    for lib, m in zip(LIBS, models, strict=True):
        arrays = [a for a in jtu.tree_leaves(lib.filter_jit(m)) if lib.is_array(a)]
        assert len(arrays) == 2


def test_returns_updated_module():
    outs = []
    for lib in LIBS:
        m = _model(lib)
        step = lib.filter_jit(lambda m, lr: jtu.tree_map(lambda a: a * (1 - lr), m))
        outs.append(jtu.tree_leaves(step(m, 0.5)))
    _same(*outs)


@pytest.mark.parametrize(
    "donate", ["none", "all", "all-except-first", "warn-except-first"]
)
def test_donation_pattern(donate):
    patterns = []
    for lib in LIBS:
        a, b = jnp.ones(4), jnp.ones(4)
        lib.filter_jit(lambda a, b: (a * 2, b * 2), donate=donate)(a, b)
        patterns.append((a.is_deleted(), b.is_deleted()))
    assert patterns[0] == patterns[1]


@pytest.mark.parametrize(
    "kwargs",
    [{"static_argnums": 0}, {"donate_argnums": 0}, {"in_shardings": None}, {"fn": 1}],
)
def test_rejected_jit_options(kwargs):
    for lib in LIBS:
        with pytest.raises(ValueError):
            lib.filter_jit(lambda x: x, **kwargs)


def test_lower_compile():
    outs = []
    for lib in LIBS:
        lowered = lib.filter_jit(lambda x, k: x * k).lower(jnp.ones(2), 3)
        assert "stablehlo.multiply" in lowered.as_text()
        outs.append(lowered.compile()(jnp.arange(2.0), 3))
    _same(*outs)


def test_error_if_same_messages():
    for lib in LIBS:
        f = lib.filter_jit(
            lambda x, i, lib=lib: lib.branched_error_if(x, x > 0, i, ["zero", "one"])
        )
        np.testing.assert_allclose(f(jnp.array(-1.0), 1), -1.0)
        with pytest.raises(_ERRORS, match="one"):
            jax.block_until_ready(f(jnp.array(1.0), jnp.array(1)))
        with pytest.raises(lib.EquinoxTracetimeError, match="static"):
            lib.error_if(jnp.ones(1), True, "static")
        with pytest.raises(ValueError):
            lib.error_if(("no", "arrays"), jnp.array(True), "m")


def test_error_if_nan_mode_and_vmap():
    x = jnp.array([1.0, -1.0, 2.0])
    outs = [
        lib.filter_jit(lambda x, lib=lib: lib.error_if(x, x < 0, "m", on_error="nan"))(
            x
        )
        for lib in LIBS
    ]
    np.testing.assert_array_equal(np.isnan(outs[0]), np.isnan(outs[1]))
    for lib in LIBS:
        vm = lib.filter_jit(jax.vmap(lambda x, lib=lib: lib.error_if(x, x < 0, "neg")))
        with pytest.raises(_ERRORS, match="neg"):
            jax.block_until_ready(vm(x))


def test_assert_max_traces_counts_alike():
    counts = []
    for lib in LIBS:
        f = lib.filter_jit(
            lib.debug.assert_max_traces(lambda x, n: x * n, max_traces=None)
        )
        for shape, n in [(2, 1), (2, 1), (3, 1), (3, 2), (2, 1)]:
            f(jnp.ones(shape), n)
        counts.append(lib.debug.get_num_traces(f))
    assert counts[0] == counts[1] == 3


def test_announce_transform_alike():
    said = {}
    for lib in LIBS:
        out = []

        def f(x, lib=lib, out=out):
            return lib.debug.announce_transform(x, name="n", announce=out.append) ** 2

        jax.jit(jax.vmap(jax.grad(f)))(jnp.arange(2.0))
        said[lib] = out
    assert said[equinox] == said[ecliptic]


def test_inspect_dce_alike(capsys):
    printed = []
    for lib in LIBS:

        @jax.jit
        def f(x, lib=lib):
            a, _ = lib.debug.store_dce((x**2, x + 1), name=f"parity_dce_{lib.__name__}")
            return a

        f(jnp.array(1))
        lib.debug.inspect_dce(name=f"parity_dce_{lib.__name__}")
        printed.append(capsys.readouterr().out.replace(lib.__name__, "LIB"))
    assert printed[0] == printed[1]
