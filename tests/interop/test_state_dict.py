"""`ecliptic.load_state_dict` and `ecliptic.state_dict`: the torch-made fixtures
(`make_fixtures.py`) give torch's outputs, round trips are exact, and every error
lists what it should."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx

from .cases import build, CASES, read_fixture


ATOL = 1e-5


def _load_case(name, mode=None):
    """The fixture's model, loaded into an abstract model (no initialisation)."""
    case = CASES[name]
    weights, inputs, outputs = read_fixture(name)
    model, state = eqx.filter_eval_shape(case.make, jr.PRNGKey(0))
    if mode is not None:  # the same fixture into a BatchNorm of another mode
        make = eqx.nn.make_with_state(eqx.nn.BatchNorm)
        model, state = build(make, model.input_size, "batch", inference=True, mode=mode)
    if state is None:
        model = eqx.load_state_dict(model, weights, rename=case.rename)
    else:
        model, state = eqx.load_state_dict(
            model, weights, state=state, rename=case.rename
        )
    return case, model, state, inputs, outputs


def _equivalent(name, tensors):
    """What determines the function: torch's two recurrent biases only by their
    sums (and the GRU's n-gate hidden bias on its own)."""
    tensors = dict(tensors)
    if name in ("gru_cell", "lstm_cell"):
        ih, hh = tensors.pop("bias_ih"), tensors.pop("bias_hh")
        split = 8 if name == "gru_cell" else len(ih)
        tensors["bias_sum"] = ih[:split] + hh[:split]
        tensors["bias_rest"] = np.concatenate([ih[split:], hh[split:]])
    return tensors


@pytest.mark.parametrize("name", list(CASES))
def test_fixture_matches_torch(name):
    case, model, state, inputs, outputs = _load_case(name)
    assert not any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(model))
    got = eqx.filter_jit(case.run)(model, state, inputs)
    assert set(got) == set(outputs)
    for key, expected in outputs.items():
        np.testing.assert_allclose(np.asarray(got[key]), expected, rtol=0, atol=ATOL)
    # and back: the same tensors in torch's names, shapes and dtypes
    weights, _, _ = read_fixture(name)
    exported = eqx.state_dict(model, state, rename=case.rename_out)
    assert sorted(exported) == sorted(weights)
    exported, weights = _equivalent(name, exported), _equivalent(name, weights)
    for key, value in weights.items():
        assert (exported[key].shape, exported[key].dtype) == (value.shape, value.dtype)
        np.testing.assert_allclose(exported[key], value, rtol=1e-6, atol=1e-6)
    # and again: a round trip through the state dict is exact
    skeleton, skeleton_state = eqx.filter_eval_shape(case.make, jr.PRNGKey(1))
    tensors = eqx.state_dict(model, state)
    if state is None:
        again = eqx.load_state_dict(skeleton, tensors)
    else:
        again, _ = eqx.load_state_dict(skeleton, tensors, state=skeleton_state)
    assert eqx.tree_equal(again, model) is True


@pytest.mark.parametrize("name", ["batch_norm1d", "batch_norm2d"])
def test_batch_norm_ema_mode_matches_torch(name):
    case, model, state, inputs, outputs = _load_case(name, mode="ema")
    got = case.run(model, state, inputs)["y"]
    np.testing.assert_allclose(np.asarray(got), outputs["y"], rtol=0, atol=ATOL)


def test_conv_transpose_kernel_is_flipped_and_regrouped():
    conv = build(eqx.nn.ConvTranspose2d, 4, 6, (2, 3), groups=2, key=jr.PRNGKey(0))
    weight = np.asarray(conv.weight)  # (out, in / groups, *k) = (6, 2, 2, 3)
    torch_weight = eqx.state_dict(conv)["weight"]  # (in, out / groups, *k)
    assert torch_weight.shape == (4, 3, 2, 3)
    # input channel 3 is group 1's second; output channel 4 is group 1's second
    np.testing.assert_array_equal(torch_weight[3, 1], weight[4, 1, ::-1, ::-1])


def test_recurrent_biases_split_as_torch():
    gru = build(eqx.nn.GRUCell, 2, 3, key=jr.PRNGKey(0))
    tensors = eqx.state_dict(gru)
    np.testing.assert_array_equal(tensors["bias_ih"], np.asarray(gru.bias))
    np.testing.assert_array_equal(tensors["bias_hh"][6:], np.asarray(gru.bias_n))
    np.testing.assert_array_equal(tensors["bias_hh"][:6], np.zeros(6, np.float32))
    lstm = build(eqx.nn.LSTMCell, 2, 3, key=jr.PRNGKey(0))
    tensors = dict(eqx.state_dict(lstm), bias_hh=np.ones(12, np.float32))
    loaded = eqx.load_state_dict(lstm, tensors)
    np.testing.assert_allclose(
        np.asarray(loaded.bias), np.asarray(lstm.bias) + 1, rtol=1e-6
    )


# -- strict errors --


def _linears(seed):
    def make():
        key = jr.PRNGKey(0)
        return [eqx.nn.Linear(3, 4, key=key), eqx.nn.Linear(4, 2, key=key)]

    return build(make, seed=seed)


def test_strict_lists_every_problem_and_loads_nothing():
    model = _linears(0)
    tensors = eqx.state_dict(_linears(1))
    del tensors["0.bias"]
    tensors["1.weight"] = np.zeros((2, 5), np.float32)
    tensors["1.bias"] = np.zeros((2,), np.float64)
    tensors["extra.weight"] = np.zeros((1,), np.float32)
    before = [np.asarray(x).copy() for x in jax.tree.leaves(model)]
    with pytest.raises(eqx.StateDictError, match="found 4 problems") as info:
        eqx.load_state_dict(model, tensors)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.missing == ["0.bias"]
    assert error.unexpected == ["extra.weight"]
    assert error.mismatched == [
        ("1.weight", (2, 4), np.dtype("float32"), (2, 5), np.dtype("float32")),
        ("1.bias", (2,), np.dtype("float32"), (2,), np.dtype("float64")),
    ]
    text = str(error)
    assert "missing: '0.bias'" in text
    assert "unexpected: 'extra.weight'" in text
    assert "'1.weight' expected shape (2, 4) and dtype float32, but found " in text
    assert "shape (2, 5) and dtype float32" in text
    assert "dtype float64" in text
    for old, new in zip(before, jax.tree.leaves(model), strict=True):
        np.testing.assert_array_equal(old, np.asarray(new))


def test_non_strict_loads_what_matches_and_reports():
    model = _linears(0)
    source = _linears(1)
    tensors = eqx.state_dict(source)
    del tensors["0.bias"]
    tensors["1.bias"] = np.zeros((3,), np.float32)
    tensors["other"] = np.zeros((1,), np.float32)
    new, report = eqx.load_state_dict(model, tensors, strict=False)
    assert isinstance(report, eqx.LoadReport)
    assert report.loaded == ("0.weight", "1.weight")
    assert report.missing == ("0.bias",)
    assert report.unexpected == ("other",)
    assert [m[0] for m in report.mismatched] == ["1.bias"]
    assert not report
    assert isinstance(new[0].weight, jax.Array)
    np.testing.assert_array_equal(new[0].weight, source[0].weight)
    np.testing.assert_array_equal(new[1].weight, source[1].weight)
    np.testing.assert_array_equal(new[0].bias, model[0].bias)  # kept
    np.testing.assert_array_equal(new[1].bias, model[1].bias)  # not loaded
    text = str(report)
    assert text.startswith("LoadReport: loaded 2 tensors; 3 not loaded:")
    assert "mismatched: '1.bias' expected shape (2,)" in text
    _, full = eqx.load_state_dict(model, eqx.state_dict(source), strict=False)
    assert full and str(full) == "LoadReport: loaded 4 tensors; everything matched."


def test_non_strict_partial_load_of_a_combined_layout_is_exact():
    """Only `bias_hh` is given: the GRU's other arrays keep their values."""
    gru = build(eqx.nn.GRUCell, 2, 3, key=jr.PRNGKey(0))
    bias_hh = np.arange(9, dtype=np.float32)
    new, report = eqx.load_state_dict(gru, {"bias_hh": bias_hh}, strict=False)
    assert report.loaded == ("bias_hh",)
    np.testing.assert_array_equal(new.weight_ih, gru.weight_ih)
    np.testing.assert_array_equal(new.bias_n, bias_hh[6:])
    expected = np.asarray(gru.bias) + np.concatenate([bias_hh[:6], np.zeros(3)])
    np.testing.assert_allclose(np.asarray(new.bias), expected, rtol=1e-6)


# -- names, renaming and values --


class _Block(eqx.Module):
    encoder: list
    scale: jax.Array
    name: str = "block"


def _block(seed):
    def make():
        layers = [eqx.nn.Linear(2, 2, key=jr.PRNGKey(0)), eqx.nn.LayerNorm(2)]
        return _Block(layers, jnp.ones(3), "b")

    return build(make, seed=seed)


def test_user_modules_use_dotted_key_paths():
    names = list(eqx.state_dict(_block(0)))
    assert names == [
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.1.weight",
        "encoder.1.bias",
        "scale",
    ]


def test_rename_pairs_and_functions():
    model = _block(0)
    source = eqx.state_dict(_block(1))
    torch_names = {k.replace("encoder.", "enc.layers."): v for k, v in source.items()}
    torch_names["enc.layers.1.gamma"] = torch_names.pop("enc.layers.1.weight")
    rules = [(r"^enc\.layers\.", "encoder."), (r"\.gamma$", ".weight")]
    new = eqx.load_state_dict(model, torch_names, rename=rules)
    np.testing.assert_array_equal(new.encoder[1].weight, source["encoder.1.weight"])
    dropped = dict(source, optimiser_step=np.zeros(()))

    def drop(name):
        return None if name == "optimiser_step" else name

    new = eqx.load_state_dict(model, dropped, rename=drop)
    np.testing.assert_array_equal(new.encoder[0].weight, source["encoder.0.weight"])
    out = eqx.state_dict(model, rename=[(r"^encoder\.", "enc.")])
    assert "enc.0.weight" in out and "scale" in out


def test_rename_errors():
    model = _block(0)
    source = eqx.state_dict(model)
    with pytest.raises(TypeError, match="`rename` expected a sequence of"):
        eqx.load_state_dict(model, source, rename="encoder")
    with pytest.raises(TypeError, match="`rename` expected a sequence of"):
        eqx.load_state_dict(model, source, rename=[("a", "b", "c")])
    with pytest.raises(ValueError, match="both 'encoder.0.weight' and"):
        eqx.load_state_dict(model, source, rename=[(r"\.\d\.", ".")])


def test_values_from_anything_with_array():
    class FakeTensor:  # what `torch.Tensor` offers, without torch
        def __init__(self, value):
            self.value = value

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    layer = build(eqx.nn.Linear, 2, 3, key=jr.PRNGKey(0))
    weight = np.full((3, 2), 2.0, np.float32)
    bias = jnp.arange(3.0, dtype=jnp.float32)
    new = eqx.load_state_dict(layer, {"weight": FakeTensor(weight), "bias": bias})
    np.testing.assert_array_equal(new.weight, weight)
    assert isinstance(new.weight, jax.Array) and new.weight.dtype == jnp.float32
    with pytest.raises(TypeError, match="'bias' is a list"):
        eqx.load_state_dict(layer, {"weight": weight, "bias": [0.0, 1.0, 2.0]})


# -- what has no PyTorch layout --


def _lora(key):
    return eqx.nn.LoRA(eqx.nn.Linear(3, 3, key=key), 1, key=key)


@pytest.mark.parametrize(
    "make, match",
    [
        (_lora, "the LoRA at `1` has no counterpart in torch.nn.*merge_lora"),
        (
            lambda k: eqx.nn.Stacked(lambda k: eqx.nn.Linear(2, 2, key=k), 2, key=k),
            "the Stacked at `1` holds its layers stacked",
        ),
        (
            lambda k: eqx.nn.MLP(2, 2, 4, 3, scan=True, key=k),
            r"the MLP at `1` stores its hidden layers stacked \(`scan=True`\)",
        ),
        (
            lambda k: eqx.nn.WeightNorm(eqx.nn.Linear(2, 2, key=k)),
            "the WeightNorm at `1` keeps its weight reparametrised",
        ),
        (
            lambda k: eqx.nn.Shared(
                [eqx.nn.Linear(2, 2, key=k)] * 2,
                lambda t: t[1].weight,
                lambda t: t[0].weight,
            ),
            "the Shared at `1` ties arrays",
        ),
        (
            lambda k: eqx.nn.MultiheadAttention(4, 8, num_kv_heads=2, key=k),
            "grouped key/value heads",
        ),
        (
            lambda k: eqx.nn.MultiheadAttention(2, 8, use_query_bias=True, key=k),
            "some projection biases but not others",
        ),
        (
            lambda k: eqx.nn.MultiheadAttention(2, 8, qk_size=3, key=k),
            "sizes torch.nn.MultiheadAttention cannot have",
        ),
    ],
)
def test_layers_without_a_torch_layout_are_refused(make, match):
    model = eqx.filter_eval_shape(
        lambda: [eqx.nn.Linear(2, 2, key=jr.PRNGKey(0)), make(jr.PRNGKey(1))]
    )
    with pytest.raises(TypeError, match="ecliptic.state_dict expected every layer"):
        eqx.state_dict(model)
    with pytest.raises(TypeError, match=match):
        eqx.load_state_dict(model, {}, strict=False)


def test_batch_norm_needs_state():
    make = eqx.nn.make_with_state(eqx.nn.BatchNorm)
    model, state = build(make, 3, "batch", mode="batch")
    with pytest.raises(
        ValueError, match=r"needs the model's `State` for the BatchNorm"
    ):
        eqx.state_dict([model])
    tensors = eqx.state_dict(model, state)
    assert tensors["num_batches_tracked"].dtype == np.int64
    with pytest.raises(ValueError, match="but got `state=None`"):
        eqx.load_state_dict(model, tensors)


def test_state_is_returned_for_models_without_stateful_layers():
    layer = build(eqx.nn.Linear, 2, 2, key=jr.PRNGKey(0))
    state = eqx.nn.State(layer)
    new, same = eqx.load_state_dict(layer, eqx.state_dict(layer), state=state)
    assert same is state
    assert eqx.tree_equal(new, layer) is True
