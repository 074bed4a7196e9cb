"""The batch-ignoring reductions of `ecliptic._unvmap` (used by `error_if` and
`ecliptic.debug.breakpoint_if`)."""

import jax
import jax.numpy as jnp
import pytest

from ecliptic._unvmap import unvmap_all, unvmap_any, unvmap_max


@pytest.mark.parametrize(
    "fn, x, expected",
    [
        (unvmap_any, [[False, False], [False, True]], True),
        (unvmap_any, [[False, False], [False, False]], False),
        (unvmap_all, [[True, True], [True, False]], False),
        (unvmap_all, [[True, True], [True, True]], True),
        (unvmap_max, [[1, 7], [3, 2]], 7),
    ],
)
def test_reduces_across_the_batch(fn, x, expected):
    x = jnp.asarray(x)
    eager = fn(x)
    assert eager.shape == () and eager.item() == expected
    assert jax.jit(fn)(x).item() == expected
    # Under vmap the batch axis is reduced too: the result is unbatched (so
    # `out_axes=None` is allowed), the reduction over the whole array.
    batched = jax.vmap(fn, out_axes=None)(x)
    assert batched.shape == () and batched.item() == expected
    nested = jax.vmap(jax.vmap(fn, out_axes=None), out_axes=None)(x)
    assert nested.shape == () and nested.item() == expected


def test_result_dtypes():
    assert unvmap_any(True).dtype == jnp.bool_
    assert unvmap_all(jnp.ones(3, bool)).dtype == jnp.bool_
    assert unvmap_max(jnp.arange(3, dtype=jnp.int32)).dtype == jnp.int32


def test_cond_on_the_result_stays_a_branch_under_vmap():
    def f(x):
        return jax.lax.cond(unvmap_any(x > 0), lambda: x + 1.0, lambda: x)

    jaxpr = jax.make_jaxpr(jax.vmap(f))(jnp.array([-1.0, 2.0]))
    assert "cond" in str(jaxpr) and "select_n" not in str(jaxpr)
    assert jax.vmap(f)(jnp.array([-1.0, 2.0])).tolist() == [0.0, 3.0]
