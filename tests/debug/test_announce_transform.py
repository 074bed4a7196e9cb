import jax
import jax.numpy as jnp
import numpy as np

from ecliptic.debug import announce_transform


def _collect(fn, *args, **kwargs):
    said = []
    out = fn(*args, announce=said.append, **kwargs)
    return out, said


def test_eager_is_identity_and_announces_impl():
    tree = {"a": jnp.arange(3.0), "s": "keep", "n": 2}
    out, said = _collect(
        lambda t, announce: announce_transform(t, announce=announce), tree
    )
    assert out["s"] == "keep" and out["n"] == 2
    np.testing.assert_allclose(out["a"], tree["a"])
    assert said == ["impl"]


def test_transform_stack_is_reported():
    said = []

    def f(x):
        return announce_transform(x, name="x", announce=said.append) ** 2

    g = jax.jit(jax.vmap(jax.grad(f)))(jnp.arange(3.0))
    np.testing.assert_allclose(g, 2 * jnp.arange(3.0))
    assert all(s.startswith("(x) ") for s in said)
    assert "(x) jvp_p:vmap:mlir" in said
    assert "(x) jvp_t:transpose:vmap:mlir" in said
    assert not any(s.endswith("jvp") for s in said)


def test_intermediates():
    said = []
    jax.vmap(lambda x: announce_transform(x, intermediates=True, announce=said.append))(
        jnp.ones(2)
    )
    assert said[0] == "vmap" and "vmap:impl" in said
