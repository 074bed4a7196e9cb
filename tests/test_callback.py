import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic as eqx


def _struct(shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def test_pure_callback_arbitrary_inputs_and_outputs():
    seen = []

    def callback(x, tag, *, scale):
        seen.append((type(x), tag, scale))
        return {"y": np.asarray(x) * scale, "tag": tag}

    @jax.jit
    def run(x):
        spec = {"y": _struct((2,)), "tag": "t"}
        return eqx.filter_pure_callback(
            callback, x, "t", scale=3.0, result_shape_dtypes=spec
        )["y"]

    np.testing.assert_allclose(run(jnp.array([1.0, 2.0])), [3.0, 6.0])
    assert seen[0][1:] == ("t", 3.0) and seen[0][0] is not jax.core.Tracer


def test_pure_callback_under_vmap():
    def callback(x):
        return np.asarray(x) + 1

    f = lambda x: eqx.filter_pure_callback(  # noqa: E731
        callback, x, result_shape_dtypes=_struct(()), vmap_method="sequential"
    )
    np.testing.assert_allclose(jax.vmap(f)(jnp.arange(3.0)), [1.0, 2.0, 3.0])


def test_pure_callback_static_output_mismatch():
    with pytest.raises(Exception, match=r"but it returned \(None, 'other'\)"):
        out = eqx.filter_pure_callback(
            lambda x: (np.asarray(x), "other"),
            jnp.ones(2),
            result_shape_dtypes=(_struct((2,)), "expected"),
        )
        jax.block_until_ready(out)
