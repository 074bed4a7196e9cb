import math

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import ecliptic as eqx
import ecliptic.nn as nn
from ecliptic.nn import add_lora, LoRA, lora_filter, merge_lora


def _mlp(key, depth=2):
    return nn.MLP(5, 3, 8, depth, key=key)


def _train_adapters(model, key, steps=5, lr=0.1):
    """A few optax SGD steps on the adapters only; returns the trained model."""
    xs = jr.normal(key, (16, 5))
    ys = jnp.sin(xs[:, :3])
    spec = lora_filter(model)
    adapters, frozen = eqx.partition(model, spec)
    optim = optax.sgd(lr)
    opt_state = optim.init(eqx.filter(model, spec))

    @eqx.filter_jit
    def step(adapters, opt_state):
        def loss(adapters):
            m = eqx.combine(adapters, frozen)
            return jnp.mean((jax.vmap(m)(xs) - ys) ** 2)

        grads = eqx.filter_grad(loss)(adapters)
        updates, opt_state = optim.update(grads, opt_state)
        return eqx.apply_updates(adapters, updates), opt_state

    for _ in range(steps):
        adapters, opt_state = step(adapters, opt_state)
    return eqx.combine(adapters, frozen)


def _loras(model):
    return jtu.tree_leaves(model, is_leaf=lambda n: isinstance(n, LoRA))


def _adapted(model):
    return [n for n in _loras(model) if isinstance(n, LoRA)]


# --- LoRA ---------------------------------------------------------------------------


def test_fresh_adapter_leaves_outputs_unchanged(getkey):
    lin = nn.Linear(5, 4, key=getkey())
    lora = LoRA(lin, 2, key=getkey())
    assert lora.lora_a.shape == (2, 5) and lora.lora_b.shape == (4, 2)
    assert lora.layer is lin and lora.rank == 2 and lora.alpha == 2.0
    np.testing.assert_array_equal(lora.lora_b, 0)
    x = jr.normal(getkey(), (5,))
    np.testing.assert_array_equal(lora(x), lin(x))


def test_fresh_adapter_on_embedding(getkey):
    emb = nn.Embedding(10, 6, key=getkey())
    lora = LoRA(emb, 3, alpha=6.0, key=getkey())
    assert lora.lora_a.shape == (3, 6) and lora.lora_b.shape == (10, 3)
    np.testing.assert_array_equal(lora(jnp.int32(7)), emb(jnp.int32(7)))
    # A non-zero update changes exactly the looked-up row by scale * (B @ A)[7].
    b = jr.normal(getkey(), (10, 3))
    lora = eqx.tree_at(lambda m: m.lora_b, lora, b)
    expected = emb.weight[7] + 2.0 * (b @ lora.lora_a)[7]
    np.testing.assert_allclose(lora(jnp.int32(7)), expected, rtol=1e-5, atol=1e-6)


def test_update_is_scaled_by_alpha_over_rank(getkey):
    lin = nn.Linear(6, 4, key=getkey())
    lora = LoRA(lin, 2, alpha=0.5, key=getkey())
    b = jr.normal(getkey(), (4, 2))
    lora = eqx.tree_at(lambda m: m.lora_b, lora, b)
    x = jr.normal(getkey(), (6,))
    expected = (lin.weight + 0.25 * b @ lora.lora_a) @ x + lin.bias
    np.testing.assert_allclose(lora(x), expected, rtol=1e-5, atol=1e-6)


def test_lora_a_init_is_kaiming_uniform_sqrt5(getkey):
    n_in = 64
    lora = LoRA(nn.Linear(n_in, 128, key=getkey()), 64, key=getkey())
    a = np.asarray(lora.lora_a)
    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in).
    bound = math.sqrt(2 / 6) * math.sqrt(3 / n_in)
    assert bound == pytest.approx(1 / math.sqrt(n_in))
    assert np.abs(a).max() <= bound
    assert np.abs(a).max() > 0.95 * bound  # fills the interval
    np.testing.assert_allclose(a.std(), bound / math.sqrt(3), rtol=0.05)
    assert abs(a.mean()) < 0.05 * bound


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_dtype_follows_weight(getkey, dtype):
    lin = nn.Linear(4, 3, dtype=dtype, key=getkey())
    lora = LoRA(lin, 2, key=getkey())
    assert lora.lora_a.dtype == dtype and lora.lora_b.dtype == dtype
    assert lora(jnp.ones(4, dtype)).dtype == dtype
    assert merge_lora(lora).weight.dtype == dtype


def test_wrong_input_shape_raises_wrapped_layers_error(getkey):
    lora = LoRA(nn.Linear(5, 4, key=getkey()), 2, key=getkey())
    with pytest.raises(eqx.ShapeError, match=r"Linear\(in_features=5.*expected `x`"):
        lora(jnp.ones((3, 5)))
    with pytest.raises(eqx.ShapeError, match="expected `x` of shape"):
        eqx.filter_jit(lora)(jnp.ones(4))


def test_vmap_jit_and_grad(getkey):
    lin = nn.Linear(5, 4, key=getkey())
    lora = LoRA(lin, 2, key=getkey())
    lora = eqx.tree_at(lambda m: m.lora_b, lora, jr.normal(getkey(), (4, 2)))
    xs = jr.normal(getkey(), (7, 5))
    expected = np.stack([lora(x) for x in xs])
    np.testing.assert_allclose(jax.vmap(lora)(xs), expected, rtol=1e-5, atol=1e-6)
    out = eqx.filter_jit(lambda m, xs: jax.vmap(m)(xs))(lora, xs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    grads = eqx.filter_grad(lambda m: jnp.sum(jax.vmap(m)(xs)))(lora)
    assert grads.lora_a.shape == (2, 5) and grads.lora_b.shape == (4, 2)
    assert float(jnp.abs(grads.lora_a).sum()) > 0
    assert float(jnp.abs(grads.lora_b).sum()) > 0


def test_key_is_passed_on_only_when_given(getkey):
    class NeedsKey(eqx.Module):
        weight: jax.Array

        def __call__(self, x, *, key=None):
            assert key is not None
            return self.weight @ x + jr.normal(key, (self.weight.shape[0],))

    class NoKey(eqx.Module):
        weight: jax.Array

        def __call__(self, x):
            return self.weight @ x

    w = jr.normal(getkey(), (3, 4))
    k = getkey()
    LoRA(NeedsKey(w), 1, key=getkey())(jnp.ones(4), key=k)
    LoRA(NoKey(w), 1, key=getkey())(jnp.ones(4))


# --- refusals -----------------------------------------------------------------------


def test_refuses_layer_without_2d_weight(getkey):
    with pytest.raises(ValueError, match="Conv2d has a `weight` of shape"):
        LoRA(nn.Conv2d(2, 3, 3, key=getkey()), 1, key=getkey())
    with pytest.raises(ValueError, match="LayerNorm has no `weight` array"):
        LoRA(nn.LayerNorm(4, use_weight=False), 1, key=getkey())
    with pytest.raises(ValueError, match=r"at `model`.*MLP has no `weight` array"):
        add_lora(_mlp(getkey()), 1, where=lambda p, n: True, key=getkey())
    scanned = nn.MLP(5, 3, 8, 3, scan=True, key=getkey())
    with pytest.raises(ValueError, match=r"at `model\.layers\[1\]`.*MLP\(scan=True\)"):
        add_lora(scanned, 1, key=getkey())


@pytest.mark.parametrize("rank", [0, -1, 5, 2.0, True])
def test_refuses_bad_rank(getkey, rank):
    with pytest.raises(ValueError, match=r"`rank` to be an int from 1 to .* = 4"):
        LoRA(nn.Linear(4, 6, key=getkey()), rank, key=getkey())


def test_add_lora_refuses_rank_too_large_for_one_layer(getkey):
    model = _mlp(getkey())  # the last layer is (3, 8)
    with pytest.raises(ValueError, match=r"add_lora.*= 3 .*`model\.layers\[2\]`"):
        add_lora(model, 4, key=getkey())


def test_add_lora_refuses_rule_matching_nothing(getkey):
    model = _mlp(getkey())
    with pytest.raises(ValueError, match=r"regex 'attn' matched none.*\.layers\[0\]"):
        add_lora(model, 1, where="attn", key=getkey())
    with pytest.raises(ValueError, match="the type Conv2d matched none"):
        add_lora(model, 1, where=nn.Conv2d, key=getkey())
    with pytest.raises(ValueError, match="matched none"):
        add_lora(model, 1, where=lambda p, n: False, key=getkey())
    # Layers already adapted are not selected again.
    adapted = add_lora(model, 1, key=getkey())
    with pytest.raises(ValueError, match="already inside a LoRA"):
        add_lora(adapted, 1, key=getkey())


def test_add_lora_refuses_bad_rule(getkey):
    with pytest.raises(TypeError, match="expected `where` to be a layer type"):
        add_lora(_mlp(getkey()), 1, where=3, key=getkey())  # pyright: ignore


# --- add_lora -----------------------------------------------------------------------


def _wrapped_paths(model):
    return [
        jtu.keystr(p)
        for p, n in jtu.tree_flatten_with_path(
            model, is_leaf=lambda n: isinstance(n, LoRA)
        )[0]
        if isinstance(n, LoRA)
    ]


def test_add_lora_default_wraps_every_linear(getkey):
    model = _mlp(getkey())
    adapted = add_lora(model, 2, key=getkey())
    assert _wrapped_paths(adapted) == [".layers[0]", ".layers[1]", ".layers[2]"]
    for lora, lin in zip(_adapted(adapted), model.layers, strict=True):
        assert lora.layer is lin
    x = jr.normal(getkey(), (5,))
    np.testing.assert_array_equal(adapted(x), model(x))


def test_add_lora_by_type_regex_and_callable(getkey):
    model = nn.Sequential(
        [
            nn.Linear(5, 8, key=getkey()),
            _mlp(getkey()),
            nn.Embedding(4, 5, key=getkey()),
        ]
    )
    by_type = add_lora(model, 1, where=nn.Embedding, key=getkey())
    assert _wrapped_paths(by_type) == [".layers[2]"]
    by_types = add_lora(model, 1, where=(nn.Embedding, nn.Linear), key=getkey())
    assert _wrapped_paths(by_types) == [
        ".layers[0]",
        ".layers[1].layers[0]",
        ".layers[1].layers[1]",
        ".layers[1].layers[2]",
        ".layers[2]",
    ]
    by_regex = add_lora(model, 1, where=r"\.layers\[1\]\.layers\[[02]\]$", key=getkey())
    assert _wrapped_paths(by_regex) == [".layers[1].layers[0]", ".layers[1].layers[2]"]
    by_callable = add_lora(
        model,
        1,
        where=lambda path, layer: (
            isinstance(layer, nn.Linear) and layer.in_features == 8
        ),
        key=getkey(),
    )
    assert _wrapped_paths(by_callable) == [
        ".layers[1].layers[1]",
        ".layers[1].layers[2]",
    ]


def test_add_lora_callable_sees_paths_and_modules_only(getkey):
    seen = []

    def rule(path, layer):
        seen.append((path, type(layer).__name__))
        return False

    with pytest.raises(ValueError):
        add_lora(_mlp(getkey(), depth=1), 1, where=rule, key=getkey())
    assert seen == [("", "MLP"), (".layers[0]", "Linear"), (".layers[1]", "Linear")]


def test_add_lora_keys_split_in_tree_order(getkey):
    model = _mlp(getkey())
    key = getkey()
    adapted = add_lora(model, 2, alpha=4.0, key=key)
    for lora, k, lin in zip(
        _adapted(adapted), jr.split(key, 3), model.layers, strict=True
    ):
        assert lora.alpha == 4.0
        expected = LoRA(lin, 2, alpha=4.0, key=k)
        np.testing.assert_array_equal(lora.lora_a, expected.lora_a)
    a0, a1 = _adapted(adapted)[:2]
    assert not np.array_equal(a0.lora_a[:, :5], a1.lora_a[:, :5])


# --- training, merging, filtering ---------------------------------------------------


def test_lora_filter_selects_exactly_the_adapters(getkey):
    adapted = add_lora(_mlp(getkey()), 2, where=r"\[[01]\]$", key=getkey())
    spec = lora_filter(adapted)
    flags = {
        jtu.keystr(p): v for p, v in jtu.tree_flatten_with_path(spec)[0] if v is True
    }
    assert sorted(flags) == [
        ".layers[0].lora_a",
        ".layers[0].lora_b",
        ".layers[1].lora_a",
        ".layers[1].lora_b",
    ]
    assert all(isinstance(v, bool) for v in jtu.tree_leaves(spec))
    trainable = jtu.tree_leaves(eqx.filter(adapted, spec))
    assert len(trainable) == 4
    # The spec has the model's structure, as `filter` / `partition` expect.
    assert jtu.tree_structure(spec) == jtu.tree_structure(
        jtu.tree_map(lambda _: False, adapted)
    )


def test_training_only_adapters_freezes_base(getkey):
    model = add_lora(_mlp(getkey()), 2, key=getkey())
    trained = _train_adapters(model, getkey())
    for before, after in zip(_adapted(model), _adapted(trained), strict=True):
        assert not np.array_equal(before.lora_b, after.lora_b)
        assert not np.array_equal(before.lora_a, after.lora_a)
        np.testing.assert_array_equal(before.layer.weight, after.layer.weight)
        np.testing.assert_array_equal(before.layer.bias, after.layer.bias)
    x = jr.normal(getkey(), (5,))
    assert not np.allclose(trained(x), model(x))


def test_merged_equals_unmerged_after_training(getkey):
    model = add_lora(_mlp(getkey()), 2, alpha=3.0, key=getkey())
    trained = _train_adapters(model, getkey())
    merged = merge_lora(trained)
    assert _loras(merged) and not _adapted(merged)
    assert all(isinstance(layer, nn.Linear) for layer in merged.layers)
    assert jtu.tree_structure(merged) == jtu.tree_structure(_mlp(getkey()))
    xs = jr.normal(getkey(), (32, 5))
    np.testing.assert_allclose(
        jax.vmap(merged)(xs), jax.vmap(trained)(xs), rtol=1e-5, atol=1e-6
    )
    # Merging changed the weights (the training did something).
    base = _adapted(trained)[0].layer.weight
    assert not np.allclose(merged.layers[0].weight, base)


def test_merge_lora_leaves_other_trees_alone(getkey):
    model = _mlp(getkey())
    assert eqx.tree_equal(merge_lora(model), model)
    assert merge_lora([1, "a", None]) == [1, "a", None]


def test_serialisation_round_trip(getkey, tmp_path):
    model = _train_adapters(add_lora(_mlp(getkey()), 2, key=getkey()), getkey())
    path = tmp_path / "lora.eqx"
    eqx.tree_serialise_leaves(path, model)
    like = add_lora(_mlp(getkey()), 2, key=getkey())
    loaded = eqx.tree_deserialise_leaves(path, like)
    assert eqx.tree_equal(loaded, model)
    x = jr.normal(getkey(), (5,))
    np.testing.assert_array_equal(loaded(x), model(x))
