import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic._module import Module

from .helpers import linear, sgd_losses


def _reference(mha, q, k, v, mask=None):
    """Multi-head attention written out with numpy."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    w = {
        n: np.asarray(getattr(mha, n).weight, np.float64)
        for n in ("query_proj", "key_proj", "value_proj", "output_proj")
    }
    h = mha.num_heads
    qh = (q @ w["query_proj"].T).reshape(q.shape[0], h, -1)
    kh = (k @ w["key_proj"].T).reshape(k.shape[0], h, -1)
    vh = (v @ w["value_proj"].T).reshape(v.shape[0], h, -1)
    logits = np.einsum("shd,Shd->hsS", qh, kh) / np.sqrt(qh.shape[-1])
    if mask is not None:
        logits = np.where(np.asarray(mask), logits, -1e30)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attn = np.einsum("hsS,Shd->shd", weights, vh).reshape(q.shape[0], -1)
    return attn @ w["output_proj"].T


def test_matches_reference(getkey):
    mha = nn.MultiheadAttention(
        2, 8, key_size=6, value_size=5, output_size=3, key=getkey()
    )
    q = jr.normal(getkey(), (4, 8))
    k = jr.normal(getkey(), (7, 6))
    v = jr.normal(getkey(), (7, 5))
    out = mha(q, k, v)
    assert out.shape == (4, 3)
    np.testing.assert_allclose(out, _reference(mha, q, k, v), rtol=1e-4, atol=1e-5)
    assert mha.query_proj.weight.shape == (8, 8)
    assert mha.value_proj.weight.shape == (8, 5)
    assert mha.output_proj.bias is None  # biases off by default


@pytest.mark.parametrize("per_head", [False, True])
def test_mask(per_head, getkey):
    mha = nn.MultiheadAttention(2, 4, key=getkey())
    x = jr.normal(getkey(), (3, 4))
    shape = (2, 3, 3) if per_head else (3, 3)
    mask = jr.bernoulli(getkey(), 0.6, shape).at[..., 0].set(True)
    out = mha(x, x, x, mask)
    np.testing.assert_allclose(
        out, _reference(mha, x, x, x, mask), rtol=1e-4, atol=1e-5
    )
    # changing a masked-out value row changes nothing
    if not per_head:
        mask = jnp.ones((3, 3), bool).at[:, 2].set(False)
        x2 = x.at[2].set(100.0)
        np.testing.assert_allclose(
            mha(x[:2], x, x, mask[:2]), mha(x[:2], x2, x2, mask[:2]), rtol=1e-5
        )


def test_shape_errors(getkey):
    mha = nn.MultiheadAttention(2, 4, key=getkey())
    x = jnp.zeros((3, 4))
    subject = (
        r"MultiheadAttention\(num_heads=2, query_size=4, key_size=4, value_size=4\)"
    )
    with pytest.raises(
        ValueError,
        match=subject + r" expected `query` of shape \(q_seq, 4\), but got shape "
        r"\(5, 3, 4\). .*jax.vmap\(mha\)\(query, key_, value\)",
    ):
        mha(jnp.zeros((5, 3, 4)), x, x)
    with pytest.raises(ValueError, match=r"expected `key_` of shape \(kv_seq, 4\)"):
        mha(x, jnp.zeros((3, 5)), x)
    with pytest.raises(
        ValueError, match=r"expected `value` of shape \(2, 4\), but got"
    ):
        mha(x, jnp.zeros((2, 4)), x)
    with pytest.raises(ValueError, match=r"expected `mask` of shape \(3, 3\)"):
        mha(x, x, x, jnp.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"expected `mask` of shape \(2, 3, 3\)"):
        mha(x, x, x, jnp.ones((4, 3, 3), bool))


def test_process_heads(getkey):
    mha = nn.MultiheadAttention(2, 4, key=getkey())
    x = jr.normal(getkey(), (3, 4))
    seen = []

    def identity(q, k, v):
        seen.append((q.shape, k.shape, v.shape))
        return q, k, v

    np.testing.assert_allclose(mha(x, x, x, process_heads=identity), mha(x, x, x))
    assert seen == [((3, 2, 2), (3, 2, 2), (3, 2, 2))]
    with pytest.raises(ValueError, match="expected `process_heads` to keep the shapes"):
        mha(x, x, x, process_heads=lambda q, k, v: (q[:, :1], k, v))


def test_dropout_and_inference(getkey):
    mha = nn.MultiheadAttention(2, 4, dropout_p=0.5, key=getkey())
    x = jr.normal(getkey(), (5, 4))
    a = mha(x, x, x, key=getkey())
    b = mha(x, x, x, key=getkey())
    assert not np.allclose(a, b)
    det = mha(x, x, x, inference=True)
    np.testing.assert_allclose(det, _reference(mha, x, x, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(nn.inference_mode(mha)(x, x, x), det)
    with pytest.warns(UserWarning, match="deterministic=...\\) is deprecated"):
        old = mha(x, x, x, deterministic=True)
    np.testing.assert_allclose(old, det)


class Block(Module):
    attn: nn.MultiheadAttention
    norm1: nn.LayerNorm
    norm2: nn.LayerNorm
    up: object
    down: object

    def __init__(self, dim, key):
        k1, k2, k3 = jr.split(key, 3)
        self.attn = nn.MultiheadAttention(2, dim, key=k1)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.up = linear(dim, 2 * dim, key=k2)
        self.down = linear(2 * dim, dim, key=k3)

    def __call__(self, x):
        h = jax.vmap(self.norm1)(x)
        x = x + self.attn(h, h, h)
        h = jax.vmap(self.norm2)(x)
        return x + jax.vmap(lambda y: self.down(jax.nn.gelu(self.up(y))))(h)


def test_transformer_block_trains(getkey):
    dim, seq = 8, 5
    block = Block(dim, getkey())
    xs = jr.normal(getkey(), (4, seq, dim))
    ys = jnp.flip(xs, axis=1)

    def loss(model, batch):
        x, y = batch
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    losses = sgd_losses(block, loss, (xs, ys), steps=8, lr=0.05)
    assert losses[-1] < losses[0]


def test_dot_product_helpers():
    from ecliptic.nn._attention import (
        dot_product_attention,
        dot_product_attention_weights,
    )

    q = jnp.array([[0.0, 2**0.5]])
    k = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    # logits are q.k / sqrt(2) = [0, 1]
    np.testing.assert_allclose(
        dot_product_attention_weights(q, k), [[1 / (1 + np.e), np.e / (1 + np.e)]]
    )
    mask = jnp.array([[True, False]])
    np.testing.assert_allclose(dot_product_attention_weights(q, k, mask), [[1.0, 0.0]])
    v = jnp.array([[1.0], [0.0]])
    np.testing.assert_allclose(dot_product_attention(q, k, v), [[1 / (1 + np.e)]])
    half = dot_product_attention_weights(
        jnp.array([[1.0]], jnp.float16), jnp.array([[9.0], [1.0]], jnp.float16)
    )
    assert half.dtype == jnp.float16 and float(half.max()) < 1
    with pytest.raises(ValueError, match=r"expected `mask` of shape \(q_seq, kv_seq\)"):
        dot_product_attention_weights(q, k, jnp.ones((2, 2), bool))


def test_known_answer_with_integer_weights(getkey):
    mha = nn.MultiheadAttention(2, 4, key=getkey())
    w = jnp.arange(16.0).reshape(4, 4)
    leaves, treedef = jax.tree_util.tree_flatten(mha)
    mha = jax.tree_util.tree_unflatten(
        treedef, [w if getattr(x, "shape", None) == (4, 4) else x for x in leaves]
    )
    x = jnp.array([[1.0, 2.0, 3.0, 4.0]])
    # one token attends to itself: out = W_o @ W_v @ x
    expected = np.asarray(w) @ (np.asarray(w) @ np.asarray(x[0]))
    np.testing.assert_allclose(mha(x, x, x)[0], expected)
    xs = jnp.arange(1.0, 13.0).reshape(3, 4)
    only_first = jnp.broadcast_to(jnp.array([True, False, False]), (3, 3))
    np.testing.assert_allclose(
        mha(xs, xs, xs, only_first), jnp.broadcast_to(expected, (3, 4)), rtol=1e-6
    )
