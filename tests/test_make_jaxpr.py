import jax
import jax.numpy as jnp
import numpy as np

import ecliptic as eqx


def test_make_jaxpr_structs_and_static_outputs():
    def f(x, n, *, s):
        return {"y": x * n, "s": s, "k": n}

    jaxpr, out_struct, out_static = eqx.filter_make_jaxpr(f)(
        jax.ShapeDtypeStruct((3,), jnp.float32), 2.0, s="name"
    )
    assert len(jaxpr.jaxpr.invars) == 1  # the Python float is static
    assert out_struct["y"] == jax.ShapeDtypeStruct((3,), jnp.float32)
    assert out_struct["s"] is None and out_struct["k"] is None
    assert out_static == {"y": None, "s": "name", "k": 2.0}
    (y,) = jax.core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, jnp.ones(3))
    np.testing.assert_allclose(y, 2.0)


def test_make_jaxpr_numpy_input_and_wrapper():
    def g(x):
        """Doc."""
        return jnp.sin(x)

    wrapped = eqx.filter_make_jaxpr(g)
    assert wrapped.__name__ == "g" and wrapped.__doc__ == "Doc."
    jaxpr, out_struct, out_static = wrapped(np.zeros(2, np.float32))
    assert "sin" in str(jaxpr)
    assert out_struct.shape == (2,) and out_static is None
