"""`ecliptic.save_safetensors` and `ecliptic.load_safetensors`: round trips (bfloat16
included), the header, atomic writes, lazy reads, the torch-made fixtures."""

import json
import os
import struct

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import safetensors
import safetensors.numpy

import ecliptic as eqx
import ecliptic._interop._safetensors as safetensors_module

from .cases import build, CASES, file_rename, FIXTURES, read_fixture


def _model(seed=0, dtype=None):
    def make():
        key = jr.PRNGKey(0)
        return eqx.nn.Sequential(
            [
                eqx.nn.Conv1d(2, 3, 3, dtype=dtype, key=key),
                eqx.nn.GRUCell(3, 2, dtype=dtype, key=key),
            ]
        )

    return build(make, seed=seed)


def _header(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def test_round_trip_and_header(tmp_path):
    path = tmp_path / "model.safetensors"
    model = _model(0)
    eqx.save_safetensors(path, model, metadata={"step": "10"})
    header = _header(path)
    meta = header.pop("__metadata__")
    assert meta["format"] == "pt"
    assert meta["step"] == "10"
    assert meta["ecliptic_version"] == eqx.__version__
    assert set(header) == set(eqx.state_dict(model))
    loaded = eqx.load_safetensors(path, _model(1))
    assert eqx.tree_equal(loaded, model) is True


def test_bfloat16_is_kept(tmp_path):
    path = tmp_path / "bf16.safetensors"
    model = _model(0, dtype=jnp.bfloat16)
    eqx.save_safetensors(str(path), model)
    assert _header(path)["layers.0.weight"]["dtype"] == "BF16"
    loaded = eqx.load_safetensors(path, _model(1, dtype=jnp.bfloat16))
    assert loaded.layers[0].weight.dtype == jnp.bfloat16
    assert eqx.tree_equal(loaded, model) is True
    with pytest.raises(eqx.StateDictError, match="dtype float32, but found shape"):
        eqx.load_safetensors(path, _model(1))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    eqx.save_safetensors(path, _model(0))
    before = path.read_bytes()

    def fail(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", fail)
    with pytest.raises(OSError, match="disk full"):
        eqx.save_safetensors(path, _model(1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    with pytest.raises(OSError, match="disk full"):
        eqx.save_safetensors(tmp_path / "new.safetensors", _model(1))
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_metadata_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="expected `metadata` to be a dict of str"):
        eqx.save_safetensors(tmp_path / "m.safetensors", _model(), metadata={"s": 1})
    assert os.listdir(tmp_path) == []


class _Counting:
    """Wraps `safe_open` and counts the tensors read."""

    def __init__(self):
        self.read = []

    def __call__(self, *args, **kwargs):
        handle = safetensors.safe_open(*args, **kwargs)
        outer = self

        class Handle:
            def __enter__(self):
                self.f = handle.__enter__()
                return self

            def __exit__(self, *exc):
                return handle.__exit__(*exc)

            def keys(self):
                return self.f.keys()

            def get_slice(self, name):
                return self.f.get_slice(name)

            def get_tensor(self, name):
                outer.read.append(name)
                return self.f.get_tensor(name)

        return Handle()


def test_load_reads_only_what_the_model_needs(tmp_path, monkeypatch):
    path = tmp_path / "big.safetensors"
    model = _model(0)
    tensors = dict(eqx.state_dict(model))
    tensors["head.weight"] = np.zeros((512, 512), np.float32)  # 1 MiB, never read
    tensors["layers.0.weight"] = np.zeros((3, 2, 4), np.float32)  # wrong shape
    safetensors.numpy.save_file(tensors, str(path))
    counting = _Counting()
    monkeypatch.setattr(safetensors_module, "_open", counting)
    with pytest.raises(eqx.StateDictError, match="found 2 problems"):
        eqx.load_safetensors(path, _model(1))
    assert counting.read == []  # strict: nothing read before the check
    loaded, report = eqx.load_safetensors(path, _model(1), strict=False)
    assert report.unexpected == ("head.weight",)
    assert [m[0] for m in report.mismatched] == ["layers.0.weight"]
    assert sorted(counting.read) == sorted(report.loaded)
    assert "head.weight" not in counting.read
    np.testing.assert_array_equal(loaded.layers[1].weight_ih, model.layers[1].weight_ih)


@pytest.mark.parametrize("name", ["cnn", "encoder", "multihead_attention"])
def test_fixture_files_load_directly(name):
    """The fixture files themselves, with a rename function that drops the inputs
    and outputs and maps torch's names."""
    case = CASES[name]
    _, inputs, outputs = read_fixture(name)
    model, state = eqx.filter_eval_shape(case.make, jr.PRNGKey(0))
    path = FIXTURES / f"{name}.safetensors"
    rename = file_rename(case.rename)
    if state is None:
        model = eqx.load_safetensors(path, model, rename=rename)
    else:
        model, state = eqx.load_safetensors(path, model, state=state, rename=rename)
    got = eqx.filter_jit(case.run)(model, state, inputs)["y"]
    np.testing.assert_allclose(np.asarray(got), outputs["y"], rtol=0, atol=1e-5)


def test_save_then_load_a_stateful_model(tmp_path):
    case = CASES["cnn"]
    model, state = build(case.make, jr.PRNGKey(0))
    path = tmp_path / "cnn.safetensors"
    eqx.save_safetensors(path, model, state, rename=case.rename_out)
    assert "1.running_mean" in _header(path)
    skeleton, skeleton_state = eqx.filter_eval_shape(case.make, jr.PRNGKey(1))
    loaded, loaded_state = eqx.load_safetensors(
        path, skeleton, state=skeleton_state, rename=case.rename
    )
    assert eqx.tree_equal(
        eqx.state_dict(loaded, loaded_state), eqx.state_dict(model, state)
    )
