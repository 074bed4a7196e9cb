"""`MultiheadAttention` for decoder models: `is_causal`, grouped-query attention
(`num_kv_heads`), and the key-value cache (`kv_cache_size`), with RoPE offsets."""

import io
import pathlib

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic
from ecliptic.nn._attention import MultiheadAttention
from ecliptic.nn._embedding import RotaryPositionalEmbedding
from ecliptic.nn._stateful import make_with_state


ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = dict(rtol=1e-5, atol=1e-5)


def reference(mha, q, k, v, mask=None):
    """Attention written out with jnp, repeating each key/value head by hand for
    the query heads that share it (head `j` serves query heads `j*g .. j*g+g-1`)."""
    h, hkv = mha.num_heads, mha.num_kv_heads
    qh = (q @ mha.query_proj.weight.T).reshape(q.shape[0], h, -1)
    kh = (k @ mha.key_proj.weight.T).reshape(k.shape[0], hkv, -1)
    vh = (v @ mha.value_proj.weight.T).reshape(v.shape[0], hkv, -1)
    kh = jnp.repeat(kh, h // hkv, axis=1)
    vh = jnp.repeat(vh, h // hkv, axis=1)
    logits = jnp.einsum("shd,Shd->hsS", qh, kh) / np.sqrt(qh.shape[-1])
    if mask is not None:
        mask = jnp.broadcast_to(mask, logits.shape)
        logits = jnp.where(mask, logits, -jnp.inf)
    weights = jax.nn.softmax(logits, axis=-1)
    attn = jnp.einsum("hsS,Shd->shd", weights, vh).reshape(q.shape[0], -1)
    return attn @ mha.output_proj.weight.T


def tril(q_seq, kv_seq):
    """The end-aligned causal mask, written out: query i sees keys
    j <= kv_seq - q_seq + i."""
    rows = jnp.arange(q_seq)[:, None] + (kv_seq - q_seq)
    return jnp.arange(kv_seq)[None, :] <= rows


def rope_heads(rope, offset):
    """`process_heads` rotating queries and keys from position `offset`."""
    per_head = jax.vmap(lambda x: rope(x, offset=offset), in_axes=1, out_axes=1)
    return lambda q, k, v: (per_head(q), per_head(k), v)


def same_leaves(a, b):
    """Same leaves, in the same order: arrays equal in shape and value, other
    leaves (the dropout's `p`) equal."""
    la, lb = jtu.tree_leaves(a), jtu.tree_leaves(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, jax.Array) != isinstance(y, jax.Array):
            return False
        if isinstance(x, jax.Array):
            if x.shape != y.shape or not bool(jnp.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


# -- the default layer is Equinox's --


def test_defaults_are_equinox_layer(getkey):
    key = getkey()
    mha = MultiheadAttention(2, 8, key_size=6, key=key)
    assert mha.num_kv_heads == 2 and not mha.is_causal
    assert mha.kv_cache is None and mha.kv_cache_size is None
    explicit = MultiheadAttention(2, 8, key_size=6, num_kv_heads=2, key=key)
    assert same_leaves(mha, explicit)
    q, k = jr.normal(getkey(), (3, 8)), jr.normal(getkey(), (5, 6))
    v = jr.normal(getkey(), (5, 8))
    np.testing.assert_array_equal(mha(q, k, v), explicit(q, k, v))
    np.testing.assert_allclose(mha(q, k, v), reference(mha, q, k, v), **TOL)


def test_default_layer_matches_equinox_bit_for_bit(getkey):
    eqx = pytest.importorskip("equinox")
    key = getkey()
    ours = MultiheadAttention(2, 8, key_size=6, key=key)
    theirs = eqx.nn.MultiheadAttention(2, 8, key_size=6, key=key)
    assert same_leaves(ours, theirs)
    q, k = jr.normal(getkey(), (3, 8)), jr.normal(getkey(), (5, 6))
    v = jr.normal(getkey(), (5, 8))
    mask = jr.bernoulli(getkey(), 0.7, (2, 3, 5))
    np.testing.assert_array_equal(ours(q, k, v), theirs(q, k, v))
    np.testing.assert_array_equal(ours(q, k, v, mask), theirs(q, k, v, mask))


# -- is_causal --


@pytest.mark.parametrize("q_seq, kv_seq", [(5, 5), (2, 5), (1, 4)])
def test_is_causal_equals_an_explicit_mask(q_seq, kv_seq, getkey):
    key = getkey()
    causal = MultiheadAttention(2, 8, is_causal=True, key=key)
    plain = MultiheadAttention(2, 8, key=key)
    assert same_leaves(causal, plain)
    q = jr.normal(getkey(), (q_seq, 8))
    kv = jr.normal(getkey(), (kv_seq, 8))
    mask = tril(q_seq, kv_seq)
    np.testing.assert_array_equal(causal(q, kv, kv), plain(q, kv, kv, mask))
    np.testing.assert_allclose(
        causal(q, kv, kv), reference(plain, q, kv, kv, mask), **TOL
    )
    # The last query sees every key; the first sees kv_seq - q_seq + 1 of them.
    np.testing.assert_allclose(causal(q, kv, kv)[-1], plain(q[-1:], kv, kv)[0], **TOL)


@pytest.mark.parametrize("per_head", [False, True])
def test_is_causal_combines_with_a_user_mask(per_head, getkey):
    key = getkey()
    causal = MultiheadAttention(2, 8, is_causal=True, key=key)
    plain = MultiheadAttention(2, 8, key=key)
    x = jr.normal(getkey(), (4, 8))
    shape = (2, 4, 4) if per_head else (4, 4)
    user = jr.bernoulli(getkey(), 0.6, shape).at[..., 0].set(True)
    both = jnp.logical_and(user, jnp.broadcast_to(tril(4, 4), shape))
    np.testing.assert_array_equal(causal(x, x, x, user), plain(x, x, x, both))
    np.testing.assert_allclose(
        causal(x, x, x, user), reference(plain, x, x, x, both), **TOL
    )


def test_causal_output_ignores_the_future(getkey):
    mha = MultiheadAttention(2, 8, is_causal=True, key=getkey())
    x = jr.normal(getkey(), (5, 8))
    changed = x.at[3:].set(100.0)
    np.testing.assert_allclose(
        mha(x, x, x)[:3], mha(changed, changed, changed)[:3], **TOL
    )
    assert not np.allclose(mha(x, x, x)[3:], mha(changed, changed, changed)[3:])


# -- grouped-query and multi-query attention --


@pytest.mark.parametrize("heads, kv_heads", [(4, 2), (6, 3), (3, 1)])
def test_grouped_query_attention_matches_repeated_heads(heads, kv_heads, getkey):
    size = 2 * heads
    mha = MultiheadAttention(
        heads, size, key_size=5, num_kv_heads=kv_heads, key=getkey()
    )
    assert mha.key_proj.weight.shape == (kv_heads * 2, 5)
    assert mha.value_proj.weight.shape == (kv_heads * 2, size)
    assert mha.query_proj.weight.shape == (size, size)
    assert mha.output_proj.weight.shape == (size, size)
    q, k = jr.normal(getkey(), (3, size)), jr.normal(getkey(), (6, 5))
    v = jr.normal(getkey(), (6, size))
    np.testing.assert_allclose(mha(q, k, v), reference(mha, q, k, v), **TOL)
    mask = jr.bernoulli(getkey(), 0.6, (heads, 3, 6)).at[..., 0].set(True)
    np.testing.assert_allclose(mha(q, k, v, mask), reference(mha, q, k, v, mask), **TOL)
    np.testing.assert_allclose(
        mha(q, k, v, mask[0]), reference(mha, q, k, v, mask[0]), **TOL
    )


def test_grouped_query_attention_is_standard_attention_with_tied_heads(getkey):
    """A GQA layer computes what a standard layer does when its key/value heads
    are the GQA heads repeated."""
    gqa = MultiheadAttention(4, 8, num_kv_heads=2, key=getkey())
    std = MultiheadAttention(4, 8, key=getkey())

    def repeat(w):  # rows of head j, for query heads 2j and 2j + 1
        return jnp.repeat(w.reshape(2, 2, -1), 2, axis=0).reshape(8, -1)

    std = ecliptic.tree_at(
        lambda m: (m.query_proj.weight, m.key_proj.weight, m.value_proj.weight,
                   m.output_proj.weight),
        std,
        (gqa.query_proj.weight, repeat(gqa.key_proj.weight),
         repeat(gqa.value_proj.weight), gqa.output_proj.weight),
    )  # fmt: skip
    x = jr.normal(getkey(), (5, 8))
    np.testing.assert_allclose(gqa(x, x, x), std(x, x, x), **TOL)


def test_grouped_query_attention_with_dropout(getkey):
    mha = MultiheadAttention(4, 8, num_kv_heads=2, dropout_p=0.5, key=getkey())
    x = jr.normal(getkey(), (5, 8))
    a, b = mha(x, x, x, key=getkey()), mha(x, x, x, key=getkey())
    assert a.shape == (5, 8) and not np.allclose(a, b)
    np.testing.assert_allclose(
        mha(x, x, x, inference=True), reference(mha, x, x, x), **TOL
    )


@pytest.mark.parametrize("bad", [3, 0, -2, 8, 1.0, True])
def test_num_kv_heads_must_divide_num_heads(bad, getkey):
    with pytest.raises(
        ValueError,
        match=r"MultiheadAttention\(num_heads=4\) expected `num_kv_heads` to be a "
        r"positive int dividing num_heads .*Pass a divisor of 4: 1, 2 or 4",
    ):
        MultiheadAttention(4, 8, num_kv_heads=bad, key=getkey())


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_kv_cache_size_must_be_positive(bad, getkey):
    with pytest.raises(ValueError, match=r"expected `kv_cache_size` to be None or a"):
        MultiheadAttention(2, 8, kv_cache_size=bad, key=getkey())


# -- the key-value cache --


def make_pair(key, heads=4, kv_heads=2, size=16, cache=12, **kw):
    """A cached layer (with its state) and the same layer without a cache."""
    cached, state = make_with_state(MultiheadAttention)(
        heads, size, num_kv_heads=kv_heads, is_causal=True, kv_cache_size=cache,
        key=key, **kw,
    )  # fmt: skip
    full = MultiheadAttention(
        heads, size, num_kv_heads=kv_heads, is_causal=True, key=key, **kw
    )
    assert same_leaves(cached, full)  # same key -> same weights; no cache leaves
    return cached, state, full


@ecliptic.filter_jit
def step(mha, x, state, rope=None):
    """One cached call; RoPE (if any) rotates from the cache's position."""
    heads = None
    if rope is not None:
        heads = rope_heads(rope, mha.cache_position(state))
    return mha(x, x, x, state=state, process_heads=heads)


def decode(mha, state, x, prompt, rope=None):
    """Prefill `x[:prompt]` in one call, then one token per call."""
    out, state = step(mha, x[:prompt], state, rope)
    outs = [out]
    for t in range(prompt, x.shape[0]):
        out, state = step(mha, x[t : t + 1], state, rope)
        outs.append(out)
    return jnp.concatenate(outs), state


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("use_rope", [False, True])
def test_prefill_then_decode_equals_the_full_causal_pass(
    heads, kv_heads, use_rope, getkey
):
    cached, state, full = make_pair(getkey(), heads, kv_heads)
    x = jr.normal(getkey(), (9, 16))
    rope = RotaryPositionalEmbedding(16 // heads) if use_rope else None
    want = full(x, x, x, process_heads=None if rope is None else rope_heads(rope, 0))
    got, state = decode(cached, state, x, prompt=4, rope=rope)
    np.testing.assert_allclose(got, want, **TOL)
    assert int(cached.cache_position(state)) == 9
    if use_rope:  # RoPE changes the result: the offsets are exercised
        assert not np.allclose(want, full(x, x, x), atol=1e-3)


def test_decoding_eagerly_matches_jit(getkey):
    cached, state, full = make_pair(getkey())
    x = jr.normal(getkey(), (5, 16))
    out, state = cached(x[:3], x[:3], x[:3], state=state)
    outs = [out]
    for t in (3, 4):
        out, state = cached(x[t : t + 1], x[t : t + 1], x[t : t + 1], state=state)
        outs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outs), full(x, x, x), **TOL)


def test_cache_holds_the_projected_keys_after_process_heads(getkey):
    cached, state, _ = make_pair(getkey(), cache=6)
    rope = RotaryPositionalEmbedding(4)
    x = jr.normal(getkey(), (3, 16))
    _, state = step(cached, x, state, rope)
    keys, values, position = state.get(cached.kv_cache)
    assert keys.shape == (6, 2, 4) and values.shape == (6, 2, 4)
    want_k = jax.vmap(cached.key_proj)(x).reshape(3, 2, 4)
    want_k = jax.vmap(rope, in_axes=1, out_axes=1)(want_k)
    np.testing.assert_allclose(keys[:3], want_k, **TOL)
    np.testing.assert_allclose(
        values[:3], jax.vmap(cached.value_proj)(x).reshape(3, 2, 4), **TOL
    )
    np.testing.assert_array_equal(keys[3:], 0.0)
    assert position.dtype == jnp.int32 and int(position) == 3


def test_non_causal_cache_sees_every_filled_position(getkey):
    key = getkey()
    cached, state = make_with_state(MultiheadAttention)(2, 8, kv_cache_size=6, key=key)
    plain = MultiheadAttention(2, 8, key=key)
    x = jr.normal(getkey(), (5, 8))
    out, state = step(cached, x[:3], state)
    np.testing.assert_allclose(out, plain(x[:3], x[:3], x[:3]), **TOL)
    for t in (3, 4):
        out, state = step(cached, x[t : t + 1], state)
        np.testing.assert_allclose(
            out, plain(x[t : t + 1], x[: t + 1], x[: t + 1]), **TOL
        )


def test_a_user_mask_covers_the_whole_cache(getkey):
    cached, state, full = make_pair(getkey(), cache=8)
    x = jr.normal(getkey(), (6, 16))
    drop_first = jnp.ones((8,), bool).at[0].set(False)  # e.g. a padding token
    want = full(x, x, x, jnp.broadcast_to(drop_first[:6], (6, 6)).at[0, 0].set(True))
    out, state = cached(
        x[:4],
        x[:4],
        x[:4],
        jnp.broadcast_to(drop_first, (4, 8)).at[0, 0].set(True),
        state=state,
    )
    np.testing.assert_allclose(out, want[:4], **TOL)
    for t in (4, 5):
        m = jnp.broadcast_to(drop_first, (4, 1, 8))  # per head
        out, state = cached(x[t : t + 1], x[t : t + 1], x[t : t + 1], m, state=state)
        np.testing.assert_allclose(out, want[t : t + 1], **TOL)


def test_position_reset_and_rewind(getkey):
    cached, state, full = make_pair(getkey(), cache=10)
    x = jr.normal(getkey(), (7, 16))
    assert int(cached.cache_position(state)) == 0
    first, state = decode(cached, state, x, prompt=5)
    assert int(cached.cache_position(state)) == 7
    # A new sequence from position 0 gives the same outputs again.
    again, state = decode(cached, cached.reset_cache(state), x, prompt=5)
    np.testing.assert_allclose(again, first, **TOL)
    # Rewind to a shared prefix of 4 and continue with other tokens.
    other = x.at[4:].set(jr.normal(getkey(), (3, 16)))
    state = cached.reset_cache(state, 4)
    assert int(cached.cache_position(state)) == 4
    outs = []
    for t in range(4, 7):
        out, state = step(cached, other[t : t + 1], state)
        outs.append(out)
    np.testing.assert_allclose(
        jnp.concatenate(outs), full(other, other, other)[4:], **TOL
    )
    # A traced position is accepted too.
    state = ecliptic.filter_jit(cached.reset_cache)(state, jnp.array(2))
    assert int(cached.cache_position(state)) == 2


def test_reset_cache_refuses_positions_outside_the_cache(getkey):
    cached, state, _ = make_pair(getkey(), cache=5)
    for bad in (-1, 6):
        with pytest.raises(
            ValueError, match=r"expected 0 <= position <= kv_cache_size=5"
        ):
            cached.reset_cache(state, bad)
    with pytest.raises(
        ecliptic.EquinoxRuntimeError, match=r"0 <= position <= kv_cache_size=5"
    ):
        ecliptic.filter_jit(cached.reset_cache)(state, jnp.array(7))


def test_cache_overflow_is_refused(getkey):
    cached, state, _ = make_pair(getkey(), cache=6)
    x = jr.normal(getkey(), (7, 16))
    # More new tokens than the cache holds: known while tracing.
    with pytest.raises(
        ValueError,
        match=r"expected at most kv_cache_size=6 new tokens per call, but got 7",
    ):
        step(cached, x, state)
    _, state = step(cached, x[:5], state)
    # Known position (eager): a ValueError naming the slots.
    with pytest.raises(
        ValueError,
        match=r"position 5 \+ 2 new tokens <= kv_cache_size=6, but they would "
        r"need 7 slots",
    ):
        cached(x[:2], x[:2], x[:2], state=state)
    # Traced position (under filter_jit): checked at run time.
    with pytest.raises(
        ecliptic.EquinoxRuntimeError,
        match=r"the key-value cache is full: position \+ 2 new tokens exceeds "
        r"kv_cache_size=6",
    ):
        step(cached, x[:2], state)
    out, state = step(cached, x[:1], state)  # the last slot still fits
    assert int(cached.cache_position(state)) == 6


def test_state_is_required_with_a_cache_and_passed_through_without(getkey):
    cached, state, full = make_pair(getkey())
    x = jr.normal(getkey(), (3, 16))
    with pytest.raises(
        TypeError, match=r"holds a key-value cache, so it expected a `state=` argument"
    ):
        cached(x, x, x)
    out, same = full(x, x, x, state=state)
    assert same is state
    np.testing.assert_array_equal(out, full(x, x, x))
    for method in (full.cache_position, full.reset_cache):
        with pytest.raises(
            ValueError, match=r"expected a layer with a key-value cache"
        ):
            method(state)


def test_cache_shape_errors(getkey):
    cached, state, _ = make_pair(getkey(), cache=6)
    x = jnp.zeros((3, 16))
    with pytest.raises(
        ValueError,
        match=r"expected `key_` of shape \(3, 16\), but got shape \(4, 16\)\..*"
        r"With a KV cache",
    ):
        cached(x, jnp.zeros((4, 16)), jnp.zeros((4, 16)), state=state)
    with pytest.raises(
        ValueError, match=r"expected `mask` of shape \(3, 6\), but got shape \(3, 3\)"
    ):
        cached(x, x, x, jnp.ones((3, 3), bool), state=state)
    with pytest.raises(ValueError, match=r"expected `mask` of shape \(4, 3, 6\)"):
        cached(x, x, x, jnp.ones((2, 3, 6), bool), state=state)


# -- transformations and serialisation --


def batched(state, n):
    """One cache per example: the state with a leading batch axis."""
    return jtu.tree_map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), state)


def test_vmap_with_one_cache_per_example(getkey):
    cached, state, full = make_pair(getkey(), cache=6)
    xs = jr.normal(getkey(), (3, 5, 16))
    rope = RotaryPositionalEmbedding(4)
    states = batched(state, 3)
    vstep = jax.vmap(lambda x, s: step(cached, x, s, rope))
    out, states = vstep(xs[:, :3], states)
    outs = [out]
    for t in (3, 4):
        out, states = vstep(xs[:, t : t + 1], states)
        outs.append(out)
    got = jnp.concatenate(outs, axis=1)
    want = jax.vmap(lambda x: full(x, x, x, process_heads=rope_heads(rope, 0)))(xs)
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_array_equal(cached.cache_position(states), [5, 5, 5])
    with pytest.raises(ValueError, match=r"holds a batch of caches. Map over it"):
        cached(xs[0, :1], xs[0, :1], xs[0, :1], state=states)


def test_grad_through_the_cache(getkey):
    cached, state, full = make_pair(getkey())
    x = jr.normal(getkey(), (4, 16))

    def loss(m, s):
        out, _ = m(x, x, x, state=s)
        return jnp.sum(out**2)

    grads = ecliptic.filter_grad(loss)(cached, state)
    want = ecliptic.filter_grad(lambda m: jnp.sum(m(x, x, x) ** 2))(full)
    for g, w in zip(jtu.tree_leaves(grads), jtu.tree_leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_serialise_layer_and_cache_mid_sequence(getkey, tmp_path):
    cached, state, _ = make_pair(getkey(), cache=8)
    x = jr.normal(getkey(), (6, 16))
    _, state = step(cached, x[:4], state)
    path = tmp_path / "decoder.eqx"
    ecliptic.tree_serialise_leaves(path, (cached, state))
    other, other_state, _ = make_pair(getkey(), cache=8)
    loaded, loaded_state = ecliptic.tree_deserialise_leaves(path, (other, other_state))
    assert same_leaves(loaded, cached)
    assert int(loaded.cache_position(loaded_state)) == 4
    want, _ = decode(cached, state, x[4:], prompt=1)
    got, _ = decode(loaded, loaded_state, x[4:], prompt=1)
    np.testing.assert_array_equal(got, want)
    # The model alone (no cache leaves) round-trips through a buffer too.
    buffer = io.BytesIO()
    ecliptic.tree_serialise_leaves(buffer, cached)
    buffer.seek(0)
    assert same_leaves(ecliptic.tree_deserialise_leaves(buffer, other), cached)
