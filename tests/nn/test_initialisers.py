"""Initialisers: the `weight_init` / `bias_init` arguments of `Linear`, `Conv`,
`ConvTranspose`, `Embedding` and `MLP`, and `ecliptic.nn.reinitialise`.

Every expectation is `jax.nn.initializers`' own output for the key the layer uses,
so a wrong key, shape, dtype or layout fails."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic
import ecliptic.nn as enn


jnn_init = jax.nn.initializers
LINEAR_INIT = jnn_init.lecun_normal(in_axis=-1, out_axis=-2)
CONV_INIT = jnn_init.lecun_normal(in_axis=1, out_axis=0)
BIAS_INIT = jnn_init.normal(stddev=0.5)


def _equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _arrays(tree):
    return [x for x in jax.tree.leaves(tree) if ecliptic.is_array(x)]


# --- defaults: unchanged, and the key the tests below expect --------------------


DEFAULT_CASES = [
    ("Linear", lambda nn, k, **kw: nn.Linear(5, 3, key=k, **kw)),
    ("MLP", lambda nn, k, **kw: nn.MLP(3, 2, 4, 2, key=k, **kw)),
    ("MLP-scan", lambda nn, k, **kw: nn.MLP(3, 2, 4, 3, scan=True, key=k, **kw)),
    ("Conv2d", lambda nn, k, **kw: nn.Conv2d(4, 6, (3, 2), groups=2, key=k, **kw)),
    ("ConvT2d", lambda nn, k, **kw: nn.ConvTranspose2d(2, 3, 3, 2, key=k, **kw)),
    ("Embedding", lambda nn, k, **kw: nn.Embedding(7, 3, key=k, **kw)),
]


@pytest.mark.parametrize(
    "make", [c[1] for c in DEFAULT_CASES], ids=[c[0] for c in DEFAULT_CASES]
)
def test_default_is_unchanged_and_equinox_s(make):
    key = jr.PRNGKey(3)
    ours, theirs = make(enn, key), make(eqx.nn, key)
    explicit = make(enn, key, weight_init=None)
    a, b, c = _arrays(ours), _arrays(theirs), _arrays(explicit)
    assert len(a) == len(b) == len(c)
    for x, y, z in zip(a, b, c, strict=True):
        _equal(x, y)
        _equal(x, z)


def test_the_expected_keys_are_the_default_s():
    """The keys the tests below derive are the ones the default draw uses."""
    key = jr.PRNGKey(0)
    wkey, bkey = jr.split(key, 2)
    lin = enn.Linear(4, 3, key=key)
    _equal(lin.weight, jr.uniform(wkey, (3, 4), minval=-0.5, maxval=0.5))
    _equal(lin.bias, jr.uniform(bkey, (3,), minval=-0.5, maxval=0.5))
    _equal(enn.Embedding(5, 2, key=key).weight, jr.normal(key, (5, 2)))


# --- Linear -------------------------------------------------------------------


def test_linear_weight_and_bias_init():
    key = jr.PRNGKey(1)
    wkey, bkey = jr.split(key, 2)
    lin = enn.Linear(5, 3, weight_init=LINEAR_INIT, bias_init=BIAS_INIT, key=key)
    _equal(lin.weight, LINEAR_INIT(wkey, (3, 5), jnp.float32))
    _equal(lin.bias, BIAS_INIT(bkey, (3,), jnp.float32))
    default = enn.Linear(5, 3, key=key)
    assert not np.array_equal(lin.weight, default.weight)


def test_linear_one_init_leaves_the_other_default():
    key = jr.PRNGKey(2)
    default = enn.Linear(4, 6, key=key)
    only_bias = enn.Linear(4, 6, bias_init=jnn_init.zeros, key=key)
    _equal(only_bias.weight, default.weight)
    _equal(only_bias.bias, jnp.zeros((6,), jnp.float32))
    only_weight = enn.Linear(4, 6, weight_init=LINEAR_INIT, key=key)
    _equal(only_weight.bias, default.bias)


def test_linear_scalar_sizes_and_dtype():
    key = jr.PRNGKey(4)
    wkey, bkey = jr.split(key, 2)
    inits = dict(weight_init=jnn_init.normal(), bias_init=jnn_init.ones)
    lin = enn.Linear("scalar", 3, dtype=jnp.float16, **inits, key=key)
    _equal(lin.weight, jnn_init.normal()(wkey, (3, 1), jnp.float16))
    _equal(lin.bias, jnp.ones((3,), jnp.float16))
    assert lin(jnp.asarray(2.0, jnp.float16)).shape == (3,)


def test_linear_fan_axes_as_documented():
    """`in_axis=-1, out_axis=-2` scales by `1/in_features`; the defaults would not."""
    key = jr.PRNGKey(5)
    lin = enn.Linear(2000, 10, weight_init=LINEAR_INIT, key=key)
    assert abs(float(jnp.std(lin.weight)) * np.sqrt(2000) - 1) < 0.1
    swapped = enn.Linear(2000, 10, weight_init=jnn_init.lecun_normal(), key=key)
    assert float(jnp.std(swapped.weight)) * np.sqrt(2000) > 5


def test_bias_init_unused_without_bias():
    lin = enn.Linear(3, 2, use_bias=False, bias_init="not used", key=jr.PRNGKey(0))
    assert lin.bias is None
    conv = enn.Conv1d(1, 2, 3, use_bias=False, bias_init=3, key=jr.PRNGKey(0))
    assert conv.bias is None


# --- Conv and ConvTranspose -------------------------------------------------------


CONVS = [
    ("Conv", lambda **kw: enn.Conv(2, 4, 6, (3, 2), groups=2, **kw), (6, 2, 3, 2)),
    ("Conv1d", lambda **kw: enn.Conv1d(3, 4, 5, **kw), (4, 3, 5)),
    ("Conv2d", lambda **kw: enn.Conv2d(4, 6, (3, 2), groups=2, **kw), (6, 2, 3, 2)),
    ("Conv3d", lambda **kw: enn.Conv3d(2, 3, 2, **kw), (3, 2, 2, 2, 2)),
    ("ConvT", lambda **kw: enn.ConvTranspose(1, 2, 3, 4, 2, **kw), (3, 2, 4)),
    ("ConvT1d", lambda **kw: enn.ConvTranspose1d(2, 3, 3, 2, **kw), (3, 2, 3)),
    (
        "ConvT2d",
        lambda **kw: enn.ConvTranspose2d(4, 2, 3, groups=2, **kw),
        (2, 2, 3, 3),
    ),
    ("ConvT3d", lambda **kw: enn.ConvTranspose3d(1, 2, 2, **kw), (2, 1, 2, 2, 2)),
]


@pytest.mark.parametrize(
    "make, wshape", [c[1:] for c in CONVS], ids=[c[0] for c in CONVS]
)
def test_conv_weight_and_bias_init(make, wshape):
    key = jr.PRNGKey(6)
    wkey, bkey = jr.split(key, 2)
    bshape = (wshape[0],) + (1,) * (len(wshape) - 2)
    conv = make(weight_init=CONV_INIT, bias_init=BIAS_INIT, key=key)
    _equal(conv.weight, CONV_INIT(wkey, wshape, jnp.float32))
    _equal(conv.bias, BIAS_INIT(bkey, bshape, jnp.float32))
    zeros = make(bias_init=jnn_init.zeros, key=key)
    _equal(zeros.bias, jnp.zeros(bshape, jnp.float32))
    _equal(zeros.weight, make(key=key).weight)


def test_conv_fan_axes_as_documented():
    """`in_axis=1, out_axis=0` gives the fan-in `in // groups * prod(kernel)`."""
    conv = enn.Conv2d(64, 64, 3, weight_init=CONV_INIT, key=jr.PRNGKey(7))
    fan_in = 64 * 9
    assert abs(float(jnp.std(conv.weight)) * np.sqrt(fan_in) - 1) < 0.1
    x = jr.normal(jr.PRNGKey(8), (64, 8, 8))
    assert conv(x).shape == (64, 6, 6)


# --- Embedding ------------------------------------------------------------------


def test_embedding_weight_init():
    key = jr.PRNGKey(9)
    init = jnn_init.normal(stddev=0.02)
    emb = enn.Embedding(10, 4, weight_init=init, key=key)
    _equal(emb.weight, init(key, (10, 4), jnp.float32))
    half = enn.Embedding(
        10, 4, dtype=jnp.float16, weight_init=jnn_init.glorot_normal(), key=key
    )
    _equal(half.weight, jnn_init.glorot_normal()(key, (10, 4), jnp.float16))


def test_embedding_refuses_weight_and_weight_init():
    with pytest.raises(ValueError, match="both a `weight` table and a `weight_init`"):
        enn.Embedding(weight=jnp.ones((3, 2)), weight_init=jnn_init.zeros)


# --- MLP ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_passes_the_inits_to_every_linear(depth):
    key = jr.PRNGKey(10)
    mlp = enn.MLP(3, 2, 5, depth, weight_init=LINEAR_INIT, bias_init=BIAS_INIT, key=key)
    keys = jr.split(key, depth + 1)
    sizes = [3] + [5] * depth + [2]
    assert len(mlp.layers) == depth + 1
    for i, layer in enumerate(mlp.layers):
        wkey, bkey = jr.split(keys[i], 2)
        _equal(layer.weight, LINEAR_INIT(wkey, (sizes[i + 1], sizes[i]), jnp.float32))
        _equal(layer.bias, BIAS_INIT(bkey, (sizes[i + 1],), jnp.float32))


def test_mlp_scan_draws_each_hidden_layer_on_its_own():
    key = jr.PRNGKey(11)
    depth = 4
    mlp = enn.MLP(
        3,
        2,
        5,
        depth,
        scan=True,
        weight_init=LINEAR_INIT,
        bias_init=jnn_init.zeros,
        key=key,
    )
    keys = jr.split(key, depth + 1)
    first, hidden, last = mlp.layers
    _equal(first.weight, LINEAR_INIT(jr.split(keys[0], 2)[0], (5, 3), jnp.float32))
    assert hidden.weight.shape == (depth - 1, 5, 5)
    for j in range(depth - 1):
        wkey = jr.split(keys[j + 1], 2)[0]
        _equal(hidden.weight[j], LINEAR_INIT(wkey, (5, 5), jnp.float32))
    _equal(hidden.bias, jnp.zeros((depth - 1, 5), jnp.float32))
    _equal(last.weight, LINEAR_INIT(jr.split(keys[depth], 2)[0], (2, 5), jnp.float32))
    assert mlp(jnp.ones(3)).shape == (2,)


# --- reinitialise -----------------------------------------------------------------


def _model():
    return enn.MLP(3, 2, 4, 2, activation=enn.PReLU(), key=jr.PRNGKey(12))


def _check_replaced(old, new, chosen, init, key):
    """`new` is `old` with the leaves at indices `chosen` (of the flat leaves) drawn
    by `init` with the subkeys of `key`, in order; every other leaf is untouched."""
    old_leaves, old_def = jtu.tree_flatten(old)
    new_leaves, new_def = jtu.tree_flatten(new)
    assert old_def == new_def
    subkeys = jr.split(key, len(chosen))
    for i, (a, b) in enumerate(zip(old_leaves, new_leaves, strict=True)):
        if i in chosen:
            k = subkeys[chosen.index(i)]
            _equal(b, init(k, a.shape, a.dtype))
        elif ecliptic.is_array(a):
            _equal(b, a)
        else:
            assert b is a


def _indices(tree, paths):
    flat = jtu.tree_flatten_with_path(tree)[0]
    return [i for i, (p, _) in enumerate(flat) if jtu.keystr(p) in paths]


def test_reinitialise_by_regex():
    model, key = _model(), jr.PRNGKey(13)
    new = enn.reinitialise(model, r"\.weight$", LINEAR_INIT, key=key)
    paths = {".layers[0].weight", ".layers[1].weight", ".layers[2].weight"}
    chosen = _indices(model, paths)
    assert len(chosen) == 3
    _check_replaced(model, new, chosen, LINEAR_INIT, key)
    assert not np.array_equal(new.layers[0].weight, model.layers[0].weight)


def test_reinitialise_by_callable_and_compiled_regex():
    model, key = _model(), jr.PRNGKey(14)
    seen = []

    def where(path, leaf):
        seen.append(path)
        return path.startswith(".layers") and leaf.ndim == 1

    new = enn.reinitialise(model, where, BIAS_INIT, key=key)
    chosen = _indices(model, {f".layers[{i}].bias" for i in range(3)})
    _check_replaced(model, new, chosen, BIAS_INIT, key)
    assert ".activation.negative_slope" in seen  # every array leaf is offered
    compiled = enn.reinitialise(
        model, re.compile(r"^\.layers\[1\]"), jnn_init.ones, key=key
    )
    _check_replaced(
        model,
        compiled,
        _indices(model, {".layers[1].weight", ".layers[1].bias"}),
        jnn_init.ones,
        key,
    )


def test_reinitialise_any_pytree_skips_non_arrays():
    tree = {"a": jnp.ones((2, 3)), "b": "text", "c": [jnp.zeros(4), 1.0], "d": None}
    key = jr.PRNGKey(15)
    new = enn.reinitialise(tree, r"\['[ac]'\]", BIAS_INIT, key=key)
    chosen = _indices(tree, {"['a']", "['c'][0]"})
    assert len(chosen) == 2
    _check_replaced(tree, new, chosen, BIAS_INIT, key)
    assert new["c"][1] == 1.0 and new["b"] == "text" and new["d"] is None


def test_reinitialise_works_under_jit():
    model, key = _model(), jr.PRNGKey(16)
    jitted = ecliptic.filter_jit(
        lambda m, k: enn.reinitialise(m, r"\.bias$", BIAS_INIT, key=k)
    )
    eager = enn.reinitialise(model, r"\.bias$", BIAS_INIT, key=key)
    for a, b in zip(_arrays(jitted(model, key)), _arrays(eager), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# --- refusals -------------------------------------------------------------------


def test_reinitialise_refuses_a_rule_matching_no_array():
    tree = {"w": jnp.ones(2), "name": "weight"}
    with pytest.raises(ValueError, match=r"selects no array leaf.*\['w'\]"):
        enn.reinitialise(tree, "weight|name", jnn_init.zeros, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="selects no array leaf"):
        enn.reinitialise(
            tree, lambda path, leaf: False, jnn_init.zeros, key=jr.PRNGKey(0)
        )
    with pytest.raises(ValueError, match="has no array leaves"):
        enn.reinitialise({"a": 1}, "a", jnn_init.zeros, key=jr.PRNGKey(0))


def test_reinitialise_refuses_bad_arguments():
    model = _model()
    with pytest.raises(TypeError, match="`init` must be an initialiser"):
        enn.reinitialise(model, "weight", "lecun", key=jr.PRNGKey(0))
    with pytest.raises(TypeError, match="`where` must be a regular expression"):
        enn.reinitialise(model, 3, jnn_init.zeros, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match="not a valid regular expression"):
        enn.reinitialise(model, "layers[", jnn_init.zeros, key=jr.PRNGKey(0))
    with pytest.raises(ValueError, match=r"should return an array of shape \(4, 3\)"):
        enn.reinitialise(
            model,
            r"layers\[0\]\.weight",
            lambda k, s, d: jnp.ones(3, d),
            key=jr.PRNGKey(0),
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda init: enn.Linear(3, 2, weight_init=init, key=jr.PRNGKey(0)),
        lambda init: enn.Conv2d(1, 2, 3, weight_init=init, key=jr.PRNGKey(0)),
        lambda init: enn.Embedding(4, 2, weight_init=init, key=jr.PRNGKey(0)),
        lambda init: enn.MLP(2, 2, 3, 1, weight_init=init, key=jr.PRNGKey(0)),
    ],
    ids=["Linear", "Conv2d", "Embedding", "MLP"],
)
def test_layers_refuse_bad_initialisers(make):
    with pytest.raises(TypeError, match="`weight_init` must be an initialiser"):
        make("glorot")
    with pytest.raises(ValueError, match="returned a function.*uncalled"):
        make(jnn_init.lecun_normal)  # the factory, not an initialiser
    with pytest.raises(ValueError, match="dtype float32, but it returned"):
        make(lambda k, s, d: jnp.zeros(s, jnp.int32))


def test_mlp_names_itself_for_a_bad_bias_init():
    with pytest.raises(TypeError, match=r"ecliptic\.nn\.MLP: `bias_init`"):
        enn.MLP(2, 2, 3, 1, bias_init=0.0, key=jr.PRNGKey(0))
    mlp = enn.MLP(
        2,
        2,
        3,
        1,
        use_bias=False,
        use_final_bias=False,
        bias_init=0.0,
        key=jr.PRNGKey(0),
    )
    assert all(layer.bias is None for layer in mlp.layers)
