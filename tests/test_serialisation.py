"""tree_serialise_leaves / tree_deserialise_leaves: round trips, validation errors,
atomic saves."""

import io
import os
import pathlib
import pickle
import stat
import struct
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import ecliptic
from ecliptic import (
    CheckpointError,
    default_deserialise_filter_spec,
    default_serialise_filter_spec,
    tree_deserialise_leaves,
    tree_serialise_leaves,
)

from .helpers import assert_trees_identical


def _tree():
    return {
        "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3),
        "b": np.arange(3, dtype=np.int32),
        "scalars": (1.5, True, 7, 2 - 1j, np.float16(0.5)),
        "bf16": jnp.array([1.0, -2.5], dtype=jnp.bfloat16),
        "name": "layer",
        "act": jax.nn.relu,
        "none": None,
    }


def _save_bytes(tree, **kwargs) -> bytes:
    f = io.BytesIO()
    tree_serialise_leaves(f, tree, **kwargs)
    return f.getvalue()


def _load_bytes(data: bytes, like, **kwargs):
    return tree_deserialise_leaves(io.BytesIO(data), like, **kwargs)


# -- round trips ---------------------------------------------------------------------


def test_round_trip_path(tmp_path):
    tree = _tree()
    tree_serialise_leaves(tmp_path / "model.eqx", tree)
    assert_trees_identical(tree_deserialise_leaves(tmp_path / "model.eqx", tree), tree)


def test_round_trip_str_path_and_file_object(tmp_path):
    tree = _tree()
    path = str(tmp_path / "model.eqx")
    tree_serialise_leaves(path, tree)
    with open(path, "rb") as f:
        out = tree_deserialise_leaves(f, tree)
    assert_trees_identical(out, tree)


def test_eqx_suffix_rule(tmp_path):
    tree = (jnp.ones(2),)
    tree_serialise_leaves(tmp_path / "model", tree)
    assert os.listdir(tmp_path) == ["model.eqx"]
    assert_trees_identical(tree_deserialise_leaves(tmp_path / "model", tree), tree)
    tree_serialise_leaves(tmp_path / "other.bin", tree)
    assert sorted(os.listdir(tmp_path)) == ["model.eqx", "other.bin"]


def test_like_from_eval_shape():
    tree = (jnp.ones((2, 3)), jnp.zeros(4, jnp.bfloat16), 3.0, "static")
    like = jax.eval_shape(lambda: tree[:2]) + tree[2:]
    assert isinstance(like[0], jax.ShapeDtypeStruct)
    out = _load_bytes(_save_bytes(tree), like)
    assert_trees_identical(out, tree)


def test_types_are_preserved():
    tree = _tree()
    out = _load_bytes(_save_bytes(tree), tree)
    assert isinstance(out["w"], jax.Array)
    assert type(out["b"]) is np.ndarray
    assert [type(x) for x in out["scalars"]] == [float, bool, int, complex, np.float16]
    assert out["act"] is jax.nn.relu and out["name"] == "layer"


def test_ml_dtypes_and_fortran_order_round_trip():
    tree = (
        jnp.array([0.5, -1.0], dtype=jnp.float8_e4m3fn),
        jnp.array([1, -2], dtype=jnp.int4),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(12.0)[::3],  # not contiguous
        ml_dtypes.bfloat16(1.5),
        np.zeros((0, 3), np.float32),
    )
    assert_trees_identical(_load_bytes(_save_bytes(tree), tree), tree)


def test_big_endian_record_loads_as_native():
    like = (np.zeros(3, np.float32),)
    f = io.BytesIO()
    np.save(f, np.arange(3, dtype=">f4"))
    out = _load_bytes(f.getvalue(), like)
    assert out[0].dtype == np.dtype(np.float32)
    np.testing.assert_array_equal(out[0], np.arange(3, dtype=np.float32))


def test_like_is_not_modified():
    saved = {"a": np.arange(3.0), "b": [np.ones(2)], "c": 1.0}
    like = {"a": np.zeros(3), "b": [np.zeros(2)], "c": 0.0}
    like_b_list = like["b"]
    data = _save_bytes(saved)
    out = _load_bytes(data, like)
    assert_trees_identical(out, saved)
    assert_trees_identical(like, {"a": np.zeros(3), "b": [np.zeros(2)], "c": 0.0})
    assert like["b"] is like_b_list and out["b"] is not like_b_list
    with pytest.raises(CheckpointError):
        _load_bytes(data[:-5], like)
    assert_trees_identical(like, {"a": np.zeros(3), "b": [np.zeros(2)], "c": 0.0})


def test_save_to_open_file_after_a_prefix():
    f = io.BytesIO()
    f.write(b"my own header\n")
    tree_serialise_leaves(f, (jnp.arange(3),))
    f.seek(0)
    assert f.readline() == b"my own header\n"
    out = tree_deserialise_leaves(f, (jnp.zeros(3, jnp.int32),))
    np.testing.assert_array_equal(out[0], jnp.arange(3))


# -- filter_spec and is_leaf ---------------------------------------------------------


def test_filter_spec_skipping_jax_arrays():
    tree = (jnp.array([1, 2, 3]), np.array([4, 5, 6]))

    def save_spec(f, x):
        if isinstance(x, jax.Array):
            return None
        return default_serialise_filter_spec(f, x)

    def load_spec(f, x):
        if isinstance(x, jax.Array):
            return x
        return default_deserialise_filter_spec(f, x)

    data = _save_bytes(tree, filter_spec=save_spec)
    like = (jnp.array([7, 8, 9]), np.zeros(3, np.int64))
    out = _load_bytes(data, like, filter_spec=load_spec)
    assert out[0] is like[0]
    np.testing.assert_array_equal(out[1], tree[1])


def test_filter_spec_as_prefix_tree():
    tree = {"keep": jnp.arange(2.0), "drop": jnp.arange(3.0)}
    skip = lambda f, x: None
    save_spec = {"keep": default_serialise_filter_spec, "drop": skip}
    load_spec = {"keep": default_deserialise_filter_spec, "drop": lambda f, x: x}
    like = {"keep": jnp.zeros(2), "drop": jnp.zeros(3)}
    out = _load_bytes(
        _save_bytes(tree, filter_spec=save_spec), like, filter_spec=load_spec
    )
    np.testing.assert_array_equal(out["keep"], tree["keep"])
    assert out["drop"] is like["drop"]


def test_is_leaf():
    class Pair:
        def __init__(self, a):
            self.a = a

    def save_spec(f, x):
        if isinstance(x, Pair):
            return default_serialise_filter_spec(f, x.a)
        return default_serialise_filter_spec(f, x)

    def load_spec(f, x):
        if isinstance(x, Pair):
            return Pair(default_deserialise_filter_spec(f, x.a))
        return default_deserialise_filter_spec(f, x)

    is_pair = lambda x: isinstance(x, Pair)
    tree = [Pair(np.arange(2.0)), np.ones(1)]
    data = _save_bytes(tree, filter_spec=save_spec, is_leaf=is_pair)
    like = [Pair(np.zeros(2)), np.zeros(1)]
    out = _load_bytes(data, like, filter_spec=load_spec, is_leaf=is_pair)
    np.testing.assert_array_equal(out[0].a, tree[0].a)


def test_np_load_in_custom_spec_still_checks_the_checksum():
    # np.load reads ahead and seeks back; the running checksum must cope.
    tree = (jnp.arange(4.0), jnp.arange(3))
    spec = lambda f, x: jnp.load(f)
    data = _save_bytes(tree)
    assert_trees_identical(_load_bytes(data, tree, filter_spec=spec), tree)
    corrupt = bytearray(data)
    corrupt[130] ^= 0xFF  # inside the first record's data
    with pytest.raises(CheckpointError, match="is corrupt: its trailer records CRC32"):
        _load_bytes(bytes(corrupt), tree, filter_spec=spec)


def test_custom_spec_that_skips_bytes_forward():
    tree = (jnp.arange(4.0), jnp.arange(3))
    data = _save_bytes(tree)

    def spec(f, x):
        if x.dtype == jnp.float32:  # skip the record by seeking over it
            f.seek(128 + 16, 1)
            return x
        return default_deserialise_filter_spec(f, x)

    out = _load_bytes(data, tree, filter_spec=spec)
    assert_trees_identical(out, tree)


# -- errors --------------------------------------------------------------------------


def test_error_class():
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(CheckpointError, RuntimeError)
    assert CheckpointError.__module__ == "ecliptic"
    assert ecliptic.CheckpointError is CheckpointError
    assert CheckpointError("x").path == ()
    error = CheckpointError("bad leaf", path=(jax.tree_util.GetAttrKey("weight"),))
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "bad leaf" and copy.path == error.path


def test_shape_mismatch_names_leaf_and_shapes():
    data = _save_bytes({"layer": {"weight": jnp.ones((3, 2))}})
    like = {"layer": {"weight": jnp.ones((4, 2))}}
    with pytest.raises(CheckpointError) as info:
        _load_bytes(data, like)
    msg = str(info.value)
    assert "leaf `['layer']['weight']`" in msg
    assert "expected shape (4, 2) and dtype float32" in msg
    assert "but the file holds shape (3, 2) and dtype float32" in msg
    assert "same hyperparameters" in msg
    assert [k.key for k in info.value.path] == ["layer", "weight"]


def test_dtype_mismatch():
    data = _save_bytes((jnp.ones(2, jnp.float16),))
    with pytest.raises(
        CheckpointError, match=r"expected shape \(2,\) and dtype float32"
    ):
        _load_bytes(data, (jnp.ones(2, jnp.float32),))
    with pytest.raises(CheckpointError, match="but the file holds .* dtype float16"):
        _load_bytes(data, (np.ones(2, np.float32),))


def test_void_record_needs_a_void_like():
    data = _save_bytes((jnp.ones(2, jnp.bfloat16),))
    with pytest.raises(CheckpointError, match=r"but the file holds .* dtype \|?V2"):
        _load_bytes(data, (jnp.ones(2, jnp.float16),))


def test_scalar_kind_mismatch():
    data = _save_bytes((1.5,))
    with pytest.raises(CheckpointError, match="expected a Python int .*kind 'iu'"):
        _load_bytes(data, (1,))
    with pytest.raises(CheckpointError, match="expected a Python bool"):
        _load_bytes(_save_bytes((1,)), (True,))


def test_like_with_more_leaves_than_the_file():
    data = _save_bytes((jnp.ones(2),))
    with pytest.raises(
        CheckpointError, match=r"leaf `\[1\]`.*but the saved leaves ended"
    ):
        _load_bytes(data, (jnp.ones(2), jnp.ones(3)))
    with pytest.raises(
        CheckpointError, match=r"Python float, but the saved leaves ended"
    ):
        _load_bytes(data, (jnp.ones(2), 1.0))


def test_trailer_is_never_loaded_as_a_leaf():
    # A `like` with one more uint8[32] leaf must not swallow the checksum trailer.
    data = _save_bytes((jnp.ones(2),))
    like = (jnp.ones(2), np.zeros(32, np.uint8))
    with pytest.raises(CheckpointError, match=r"`\[1\]`.*saved leaves ended"):
        _load_bytes(data, like)
    saved = (jnp.ones(2), np.arange(32, dtype=np.uint8))
    assert_trees_identical(_load_bytes(_save_bytes(saved), like), saved)


def test_trailing_data_is_an_error():
    data = _save_bytes((jnp.ones(2), jnp.ones(3)))
    with pytest.raises(CheckpointError, match=r"unexpected data at byte 136, after"):
        _load_bytes(data, (jnp.ones(2),))
    with pytest.raises(CheckpointError, match="unexpected data at byte"):
        _load_bytes(data + b"\x00", (jnp.ones(2), jnp.ones(3)))


def test_trailing_garbage_after_plain_records():
    f = io.BytesIO()
    np.save(f, np.ones(2, np.float32))
    f.write(b"junk")
    with pytest.raises(CheckpointError, match="unexpected data at byte 136"):
        _load_bytes(f.getvalue(), (jnp.ones(2),))


def test_truncated_data():
    data = _save_bytes((jnp.ones(100),))
    with pytest.raises(
        CheckpointError, match="file ends after 72 of the 400 data bytes"
    ):
        _load_bytes(data[:200], (jnp.ones(100),))


def test_truncated_header():
    data = _save_bytes((jnp.ones(2), jnp.ones(2)))
    with pytest.raises(CheckpointError, match=r"`\[1\]`.*ends inside a record header"):
        _load_bytes(data[:150], (jnp.ones(2), jnp.ones(2)))
    with pytest.raises(CheckpointError, match="ends inside a record header"):
        _load_bytes(data[: 141 + 8], (jnp.ones(2), jnp.ones(2)))


def test_checksum_mismatch():
    data = bytearray(_save_bytes((jnp.ones(2), 3)))
    data[130] ^= 1
    with pytest.raises(CheckpointError, match=r"is corrupt: .* over 272 bytes") as info:
        _load_bytes(bytes(data), (jnp.ones(2), 3))
    assert info.value.path == ()


def _record(header: bytes, data: bytes = b"", version: bytes = b"\x01\x00") -> bytes:
    size = struct.pack("<H" if version == b"\x01\x00" else "<I", len(header))
    return b"\x93NUMPY" + version + size + header + data


@pytest.mark.parametrize(
    "record, match",
    [
        (b"\x93NUMPX\x01\x00", "expected a `.npy` record starting with"),
        (b"\x93NUMPY\x07\x00\x00\x00", r"unknown `.npy` format version 7\.0"),
        (b"\x93NUMPY\x01\x00\xff\xff", "ends inside a record header"),
        (_record(b"", version=b"\x02\x00")[:8] + b"\xff\xff\xff\x7f", "claims"),
        (_record(b"{'descr': '<f4'}\n"), "header .* is malformed"),
        (
            _record(b"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}\n"),
            "malformed",
        ),
        (_record(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}"), "malf"),
        (
            _record(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,"),
            "malformed",
        ),
        (
            _record(b"{'descr': '<q9', 'fortran_order': False, 'shape': (2,)}"),
            "not valid",
        ),
        (_record(b"{'descr': '|O', 'fortran_order': False, 'shape': (2,)}"), "pickle"),
        (_record(b"\xff\xfe", version=b"\x03\x00"), "not valid text"),
    ],
)
def test_malformed_records(record, match):
    with pytest.raises(CheckpointError, match=match) as info:
        _load_bytes(record, (jnp.ones(2),))
    assert "leaf `[0]`" in str(info.value)


def test_root_leaf_is_named():
    with pytest.raises(CheckpointError, match=r"leaf `\(the root\)`"):
        _load_bytes(b"", jnp.ones(2))


def test_custom_spec_errors_are_wrapped():
    def spec(f, x):
        raise KeyError("boom")

    with pytest.raises(
        CheckpointError, match=r"leaf `\[0\]`.*KeyError\('boom'\)"
    ) as info:
        _load_bytes(_save_bytes((jnp.ones(2),)), (jnp.ones(2),), filter_spec=spec)
    assert isinstance(info.value.__cause__, KeyError)


def test_custom_spec_returning_wrong_type_or_shape():
    data = _save_bytes((jnp.ones(2),))
    as_numpy = lambda f, x: np.load(f)
    with pytest.raises(
        CheckpointError, match="should have type ArrayImpl, but got ndarray"
    ):
        _load_bytes(data, (jnp.ones(2),), filter_spec=as_numpy)
    with pytest.raises(
        CheckpointError, match=r"should have shape \(3,\).*got shape \(2,\)"
    ):
        _load_bytes(data, (np.ones(3, np.float32),), filter_spec=as_numpy)


def test_filter_spec_not_a_prefix():
    spec = {"a": default_serialise_filter_spec}
    with pytest.raises(
        ValueError, match="`filter_spec` must be a callable or a PyTree"
    ):
        _save_bytes({"b": jnp.ones(2)}, filter_spec=spec)


def test_saving_object_arrays_is_refused():
    with pytest.raises(TypeError, match="Cannot save a leaf of dtype object") as info:
        _save_bytes({"big": 2**70})
    assert any("['big']" in note for note in getattr(info.value, "__notes__", []))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        tree_deserialise_leaves(tmp_path / "nope", (jnp.ones(2),))


# -- atomic saves --------------------------------------------------------------------


def _failing_spec(exc):
    calls = []

    def spec(f, x):
        calls.append(x)
        default_serialise_filter_spec(f, x)
        if len(calls) == 2:
            raise exc

    return spec


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_save_keeps_previous_file(tmp_path, exc):
    old = (jnp.arange(3.0), jnp.arange(2.0), jnp.arange(1.0))
    path = tmp_path / "ckpt.eqx"
    tree_serialise_leaves(path, old)
    before = path.read_bytes()
    new = tuple(x + 1 for x in old)
    with pytest.raises(type(exc)):
        tree_serialise_leaves(path, new, filter_spec=_failing_spec(exc))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.eqx"]
    assert_trees_identical(tree_deserialise_leaves(path, old), old)


def test_failed_first_save_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        tree_serialise_leaves(
            tmp_path / "x", (1.0, 2.0), filter_spec=_failing_spec(RuntimeError())
        )
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        tree_serialise_leaves(tmp_path / "missing" / "x.eqx", (1.0,))
    assert os.listdir(tmp_path) == []


def test_save_keeps_permissions_and_follows_symlinks(tmp_path):
    real = tmp_path / "real.eqx"
    tree_serialise_leaves(real, (1.0,))
    os.chmod(real, 0o600)
    link = tmp_path / "link.eqx"
    link.symlink_to(real)
    tree_serialise_leaves(link, (2.0,))
    assert link.is_symlink()
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    assert tree_deserialise_leaves(real, (0.0,)) == (2.0,)


def test_killed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "ckpt.eqx"
    tree_serialise_leaves(path, (jnp.arange(3.0),))
    before = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        import ecliptic

        def spec(f, x):
            ecliptic.default_serialise_filter_spec(f, x)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        ecliptic.tree_serialise_leaves({str(path)!r}, (np.zeros(3),), filter_spec=spec)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(ecliptic.__file__).parents[1]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert path.read_bytes() == before
    out = tree_deserialise_leaves(path, (jnp.zeros(3),))
    np.testing.assert_array_equal(out[0], jnp.arange(3.0))


def test_float8_e5m2_round_trips():
    # numpy writes this dtype's descr as '<f1', which np.load cannot read back.
    tree = (jnp.array([1.0, -0.5], dtype=jnp.float8_e5m2),)
    assert_trees_identical(_load_bytes(_save_bytes(tree), tree), tree)


@pytest.mark.parametrize("offset", [60, 127, 128 + 3, 128 + 17, 128 + 21, 128 + 31])
def test_damaged_trailer_is_detected(offset):
    data = bytearray(_save_bytes((jnp.ones(2),)))
    data[136 + offset] ^= 0x03  # 0x20 ^ 0x03 == '#': a comment inside the header
    with pytest.raises(CheckpointError, match="unexpected data at byte 136|corrupt"):
        _load_bytes(bytes(data), (jnp.ones(2),))


def test_wrapped_files_expose_no_fileno(tmp_path):
    # Writing through the descriptor would bypass the checksum, so it is refused.
    def spec(f, x):
        with pytest.raises(AttributeError, match="expose no `fileno`"):
            f.fileno()
        assert f.writable()  # other attributes pass through
        default_serialise_filter_spec(f, x)

    tree_serialise_leaves(tmp_path / "x.eqx", (np.ones(2),), filter_spec=spec)
    with open(tmp_path / "x.eqx", "rb") as f:

        def load_spec(f, x):
            with pytest.raises(AttributeError, match="expose no `fileno`"):
                f.fileno()
            assert f.name == str(tmp_path / "x.eqx")
            return default_deserialise_filter_spec(f, x)

        out = tree_deserialise_leaves(f, (np.zeros(2),), filter_spec=load_spec)
    np.testing.assert_array_equal(out[0], np.ones(2))


class _WriteOnly:
    """A sink with nothing but `write` (a socket or pipe, say)."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))


class _ReadOnly:
    """A source with nothing but `read`: no `tell`, `seek` or `readinto`."""

    def __init__(self, data):
        self._f = io.BytesIO(data)

    def read(self, n=-1):
        return self._f.read(min(n, 7) if n and n > 0 else n)  # short reads too


def test_streams_without_seek_tell_or_readinto():
    tree = (jnp.arange(10.0), np.arange(3), 2.5, "x")
    sink = _WriteOnly()
    tree_serialise_leaves(sink, tree)
    data = b"".join(sink.chunks)
    assert data == _save_bytes(tree)
    assert_trees_identical(tree_deserialise_leaves(_ReadOnly(data), tree), tree)
    corrupt = data[:150] + bytes([data[150] ^ 1]) + data[151:]  # array data
    with pytest.raises(CheckpointError, match="is corrupt"):
        tree_deserialise_leaves(_ReadOnly(corrupt), tree)
    with pytest.raises(CheckpointError, match="<_ReadOnly>: could not load leaf"):
        tree_deserialise_leaves(_ReadOnly(data[:300]), tree)


def test_directory_path_gets_a_sibling_eqx_file(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    tree_serialise_leaves(target, (1.0,))
    assert (tmp_path / "run.eqx").is_file()
    assert tree_deserialise_leaves(target, (0.0,)) == (1.0,)


def test_jitted_scalars_load_into_numpy_scalar_likes():
    tree = (jnp.array(1), ml_dtypes.bfloat16(1), np.float32(1), object())
    saved = jax.jit(lambda t: t)(tree[:3]) + tree[3:]
    assert all(isinstance(x, jax.Array) for x in saved[:3])
    like = (jnp.array(2), ml_dtypes.bfloat16(2), np.float32(2), object())
    out = _load_bytes(_save_bytes(saved), like)
    assert_trees_identical(out[:3], tree[:3])
    assert out[3] is like[3]


# -- structured attributes of CheckpointError ----------------------------------------


def _npy_bytes(arr) -> bytes:
    """The bytes of one record, as `np.save` writes them."""
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


def _details(error):
    return (
        error.expected_shape,
        error.found_shape,
        error.expected_dtype,
        error.found_dtype,
        error.offset,
    )


def test_mismatch_attributes_give_both_shapes_dtypes_and_the_offset():
    first = np.zeros(5, np.int32)
    data = _save_bytes((first, jnp.ones((3, 2), jnp.float16)))
    with pytest.raises(CheckpointError) as info:
        _load_bytes(data, (first, jnp.ones((4, 2), jnp.float32)))
    assert _details(info.value) == (
        (4, 2),
        (3, 2),
        np.dtype(np.float32),
        np.dtype(np.float16),
        len(_npy_bytes(first)),
    )
    assert info.value.path == (jax.tree_util.SequenceKey(1),)


def test_offset_counts_from_the_start_of_the_file():
    f = io.BytesIO()
    f.write(b"prefix")
    tree_serialise_leaves(f, (jnp.ones(2),))
    f.seek(len(b"prefix"))
    with pytest.raises(CheckpointError) as info:
        tree_deserialise_leaves(f, (jnp.ones(3),))
    assert info.value.offset == len(b"prefix")
    assert f"record at byte {len(b'prefix')}" in str(info.value)


def test_scalar_mismatch_expects_a_kind_not_a_dtype():
    with pytest.raises(CheckpointError) as info:
        _load_bytes(_save_bytes((1.5,)), (1,))
    assert _details(info.value) == ((), (), None, np.dtype(np.float64), 0)


def test_leaves_that_ran_out_have_no_found_shape():
    data = _save_bytes((jnp.ones(2),))
    with pytest.raises(CheckpointError) as info:
        _load_bytes(data, (jnp.ones(2), jnp.ones(3, jnp.int32)))
    assert _details(info.value) == (
        (3,),
        None,
        np.dtype(np.int32),
        None,
        len(_npy_bytes(np.ones(2, np.float32))),
    )


def test_truncated_data_finds_the_record_header():
    data = _save_bytes((jnp.ones(100),))
    with pytest.raises(CheckpointError) as info:
        _load_bytes(data[:200], (jnp.ones(100),))
    f32 = np.dtype(np.float32)
    assert _details(info.value) == ((100,), (100,), f32, f32, 0)


def test_malformed_header_has_only_the_expected_side():
    record = b"\x93NUMPY\x01\x00\x02\x00{}"
    with pytest.raises(CheckpointError) as info:
        _load_bytes(record, (jnp.ones(2),))
    assert _details(info.value) == ((2,), None, np.dtype(np.float32), None, 0)


def test_whole_file_errors_give_the_offset_of_the_bad_bytes():
    first = jnp.ones(2)
    data = _save_bytes((first, jnp.ones(3)))
    with pytest.raises(CheckpointError, match="unexpected data") as info:
        _load_bytes(data, (first,))
    end_of_first = len(_npy_bytes(np.asarray(first)))
    assert info.value.path == ()
    assert _details(info.value) == (None, None, None, None, end_of_first)

    corrupt = bytearray(_save_bytes((first,)))
    corrupt[end_of_first - 1] ^= 1  # the last data byte: the trailer follows
    with pytest.raises(CheckpointError, match="is corrupt") as info:
        _load_bytes(bytes(corrupt), (first,))
    assert info.value.path == ()
    assert info.value.offset == end_of_first


def test_custom_spec_results_are_checked_with_attributes():
    first = np.zeros(4, np.int8)
    data = _save_bytes((first, jnp.ones(2)))
    as_numpy = lambda f, x: np.load(f)
    with pytest.raises(CheckpointError, match="should have shape") as info:
        _load_bytes(data, (first, np.ones(3, np.float32)), filter_spec=as_numpy)
    f32 = np.dtype(np.float32)
    assert _details(info.value) == ((3,), (2,), f32, f32, len(_npy_bytes(first)))
    assert info.value.path == (jax.tree_util.SequenceKey(1),)


def test_stream_that_cannot_tell_has_an_unknown_offset():
    data = _save_bytes((jnp.ones(2),))
    with pytest.raises(CheckpointError) as info:
        tree_deserialise_leaves(_ReadOnly(data), (jnp.ones(3),))
    assert info.value.offset is None
    assert info.value.expected_shape == (3,) and info.value.found_shape == (2,)


def test_bad_hyperparameter_line_gives_its_offset():
    f = io.BytesIO(b"xx")
    f.seek(1)
    with pytest.raises(CheckpointError, match="JSON dict") as info:
        ecliptic.load_with_hyperparameters(f, lambda: None)
    assert info.value.offset == 1 and info.value.path == ()


def test_attributes_survive_pickling():
    data = _save_bytes((jnp.ones(2),))
    with pytest.raises(CheckpointError) as info:
        _load_bytes(data, (jnp.ones(3),))
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    assert again.path == info.value.path
    assert _details(again) == _details(info.value)


def test_defaults_are_none():
    error = CheckpointError("x")
    assert error.path == ()
    assert _details(error) == (None, None, None, None, None)
