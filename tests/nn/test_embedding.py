"""`ecliptic.nn.Embedding` and `ecliptic.nn.RotaryPositionalEmbedding`."""

import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as enn


def test_embedding_from_sizes(getkey):
    emb = enn.Embedding(5, 3, key=getkey())
    assert emb.weight.shape == (5, 3) and emb.weight.dtype == jnp.float32
    np.testing.assert_array_equal(emb(jnp.array(2)), emb.weight[2])
    np.testing.assert_array_equal(emb(4), emb.weight[4])


def test_embedding_is_standard_normal(getkey):
    emb = enn.Embedding(200, 50, key=getkey())
    assert abs(float(emb.weight.mean())) < 0.05
    assert abs(float(emb.weight.std()) - 1) < 0.05


def test_embedding_from_weight():
    table = jnp.arange(6.0).reshape(3, 2)
    emb = enn.Embedding(weight=table)
    assert (emb.num_embeddings, emb.embedding_size) == (3, 2)
    np.testing.assert_array_equal(emb(jnp.array(1)), [2.0, 3.0])
    assert enn.Embedding(3, 2, weight=table).num_embeddings == 3


def test_sequences_need_vmap(getkey):
    emb = enn.Embedding(5, 3, key=getkey())
    ids = jnp.array([0, 4, 4])
    with pytest.raises(
        ValueError,
        match=re.escape("Embedding(num_embeddings=5, embedding_size=3) expected `x` of")
        + ".*"
        + re.escape("jax.vmap(layer)(x)"),
    ):
        emb(ids)
    assert jax.vmap(emb)(ids).shape == (3, 3)


def test_float_index_is_a_type_error(getkey):
    emb = enn.Embedding(5, 3, key=getkey())
    with pytest.raises(TypeError, match="expected an integer index `x`, but got dtype"):
        emb(jnp.array(1.0))


def test_embedding_constructor_errors(getkey):
    with pytest.raises(ValueError, match="needs either `num_embeddings`"):
        enn.Embedding(5, 3)
    with pytest.raises(ValueError, match="`num_embeddings` must not be negative"):
        enn.Embedding(-1, 3, key=getkey())
    with pytest.raises(ValueError, match=re.escape("`weight` of shape (4, 2), but")):
        enn.Embedding(4, 2, weight=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=re.escape("but got shape (6,)")):
        enn.Embedding(weight=jnp.zeros(6))


def _rope_reference(x, theta, offset=0):
    """RoPE written out with numpy in float64, rotate-half convention."""
    x = np.asarray(x, np.float64)
    seq, d = x.shape
    inv = theta ** (-np.arange(0, d, 2) / d)
    ang = np.outer(np.arange(offset, offset + seq), inv)
    cos, sin = np.tile(np.cos(ang), 2), np.tile(np.sin(ang), 2)
    rotated = np.concatenate([-x[:, d // 2 :], x[:, : d // 2]], axis=1)
    return x * cos + rotated * sin


@pytest.mark.parametrize("theta", [10_000.0, 100.0, 7.0])
def test_rope_matches_reference_for_every_theta(getkey, theta):
    x = jr.normal(getkey(), (6, 8))
    # The default theta first, so that a cache keyed without theta would be wrong.
    enn.RotaryPositionalEmbedding(8)(x)
    rope = enn.RotaryPositionalEmbedding(8, theta=theta)
    np.testing.assert_allclose(rope(x), _rope_reference(x, theta), rtol=1e-4, atol=1e-5)


def test_rope_offset_static_and_traced(getkey):
    x = jr.normal(getkey(), (10, 4))
    rope = enn.RotaryPositionalEmbedding(4)
    full = rope(x)
    np.testing.assert_allclose(rope(x[7:], offset=7), full[7:], rtol=1e-5, atol=1e-6)
    traced = jax.jit(lambda x, o: rope(x, offset=o))(x[7:], jnp.array(7))
    np.testing.assert_allclose(traced, full[7:], rtol=1e-4, atol=1e-5)
    want = _rope_reference(x[:3], 10_000.0, offset=100)
    np.testing.assert_allclose(rope(x[:3], offset=100), want, rtol=1e-4, atol=1e-4)


def test_rope_preserves_norms_and_relative_positions(getkey):
    rope = enn.RotaryPositionalEmbedding(8)
    q = jnp.tile(jr.normal(getkey(), (1, 8)), (5, 1))
    k = jnp.tile(jr.normal(getkey(), (1, 8)), (5, 1))
    rq, rk = rope(q), rope(k)
    np.testing.assert_allclose(
        jnp.linalg.norm(rq, axis=1), jnp.linalg.norm(q, axis=1), rtol=1e-5
    )
    # <rq_i, rk_j> depends only on i - j.
    np.testing.assert_allclose(jnp.dot(rq[3], rk[1]), jnp.dot(rq[4], rk[2]), rtol=1e-4)


def test_rope_mixed_dtypes_under_standard_promotion(getkey):
    # As Equinox: computed in the promoted dtype, returned in the input's dtype.
    x = jr.normal(getkey(), (3, 4))
    with jax.numpy_dtype_promotion("standard"):
        y16 = enn.RotaryPositionalEmbedding(4)(x.astype(jnp.float16))
        y32 = enn.RotaryPositionalEmbedding(4, dtype=jnp.bfloat16)(x)
    assert y16.dtype == jnp.float16
    assert y32.dtype == jnp.float32
    want = _rope_reference(x.astype(jnp.float16), 10_000.0)
    np.testing.assert_allclose(y16.astype(jnp.float32), want, rtol=2e-3, atol=2e-3)


def test_rope_same_dtype_under_strict_promotion(getkey):
    x = jr.normal(getkey(), (3, 4)).astype(jnp.bfloat16)
    rope = enn.RotaryPositionalEmbedding(4, dtype=jnp.bfloat16)
    assert rope(x).dtype == jnp.bfloat16


@pytest.mark.parametrize("offset", [0, jnp.array(2)])
def test_rope_strict_promotion_refuses_mixed_dtypes(offset):
    rope = enn.RotaryPositionalEmbedding(4, dtype=jnp.float32)
    x = jnp.ones((3, 4), jnp.float16)
    with jax.numpy_dtype_promotion("strict"):
        with pytest.raises(
            jax.dtypes.TypePromotionError,
            match=r"rotation tables in float32, but got `x` of dtype float16.*"
            + re.escape("x.astype(jnp.float32)"),
        ):
            rope(x, offset=offset)


def test_rope_errors():
    with pytest.raises(ValueError, match="non-negative even number.*embedding_size=3"):
        enn.RotaryPositionalEmbedding(3)
    rope = enn.RotaryPositionalEmbedding(4)
    with pytest.raises(
        ValueError, match="The last axis must be embedding_size=4, not 6"
    ):
        rope(jnp.ones((2, 6)))
    with pytest.raises(ValueError, match=re.escape("jax.vmap(layer)(x)")):
        rope(jnp.ones((3, 2, 4)))
    with pytest.raises(ValueError, match="got offset=-1"):
        rope(jnp.ones((2, 4)), offset=-1)


def test_rope_static_methods():
    cos, sin = enn.RotaryPositionalEmbedding.precompute_freqs_cis(
        4, 3, 100.0, jnp.float32
    )
    assert cos.shape == sin.shape == (3, 2)
    np.testing.assert_allclose(cos[:, 1], np.cos(np.arange(3) / 10.0), rtol=1e-6)
    half = enn.RotaryPositionalEmbedding.rotate_half(jnp.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(half, [-3.0, -4.0, 1.0, 2.0])


def test_rope_cache_is_cleared_by_clear_caches():
    import ecliptic
    from ecliptic._caches import cached_entries  # the documented test hook

    rope = enn.RotaryPositionalEmbedding(4)
    x = jnp.ones((3, 4))
    ecliptic.clear_caches()
    assert cached_entries() == 0
    first = rope(x)
    assert cached_entries() > 0  # its tables are cached
    ecliptic.clear_caches()
    assert cached_entries() == 0
    np.testing.assert_array_equal(rope(x), first)  # and rebuilt the same
