"""File-format parity with Equinox: files written by one load in the other, and
ecliptic's bytes are Equinox's bytes plus one trailing checksum record."""

import io
import json

import equinox
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

import ecliptic

from ..helpers import abstract, assert_trees_identical, trees


_TRAILER = 128 + 32


def _mixed_tree():
    return {
        "f32": jnp.arange(3.0),
        "i32": np.arange(2, dtype=np.int32),
        "py": (1.5, True, 3, 1 - 2j),
        "name": "str",
        "bf16": jnp.array([1.0, 2.0], dtype=jnp.bfloat16),
        "np_scalars": (np.float32(2.0), jnp.bfloat16(0.5)),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }


def _bytes(module, tree, **kwargs) -> bytes:
    f = io.BytesIO()
    module.tree_serialise_leaves(f, tree, **kwargs)
    return f.getvalue()


def test_five_records_for_the_reference_example():
    tree = (
        jnp.ones(3),
        jnp.ones(2, jnp.int32),
        1.5,
        True,
        "str",
        jnp.ones(1, "bfloat16"),
    )
    theirs, ours = _bytes(equinox, tree), _bytes(ecliptic, tree)
    assert theirs.count(b"\x93NUMPY") == 5
    assert ours.count(b"\x93NUMPY") == 6  # + the trailer
    assert b"'descr': '<V2'" in theirs


def test_bytes_are_equinox_bytes_plus_one_trailer_record():
    tree = _mixed_tree()
    theirs, ours = _bytes(equinox, tree), _bytes(ecliptic, tree)
    assert ours[: len(theirs)] == theirs
    trailer = np.load(io.BytesIO(ours[len(theirs) :]))
    assert trailer.dtype == np.uint8 and trailer.shape == (32,)
    assert len(ours) == len(theirs) + _TRAILER


@settings(max_examples=30, deadline=None)
@given(tree=trees)
def test_bytes_match_on_generated_trees(tree):
    theirs, ours = _bytes(equinox, tree), _bytes(ecliptic, tree)
    assert ours[: len(theirs)] == theirs and len(ours) == len(theirs) + _TRAILER


@pytest.mark.parametrize("use_path", [True, False])
def test_equinox_file_loads_in_ecliptic(tmp_path, use_path):
    tree = _mixed_tree()
    path = tmp_path / "model"  # the `.eqx` suffix rule applies to both
    equinox.tree_serialise_leaves(path, tree)
    assert (tmp_path / "model.eqx").exists()
    if use_path:
        out = ecliptic.tree_deserialise_leaves(path, tree)
    else:
        with open(tmp_path / "model.eqx", "rb") as f:
            out = ecliptic.tree_deserialise_leaves(f, tree)
    assert_trees_identical(out, tree)


@pytest.mark.parametrize("use_path", [True, False])
def test_ecliptic_file_loads_in_equinox(tmp_path, use_path):
    tree = _mixed_tree()
    path = tmp_path / "model"
    ecliptic.tree_serialise_leaves(path, tree)
    assert (tmp_path / "model.eqx").exists()
    if use_path:
        out = equinox.tree_deserialise_leaves(path, tree)
    else:
        with open(tmp_path / "model.eqx", "rb") as f:
            out = equinox.tree_deserialise_leaves(f, tree)
    assert_trees_identical(out, tree)


def _mlp():
    return equinox.nn.MLP(2, 3, 4, 2, key=jr.PRNGKey(0))


@pytest.mark.parametrize(
    "make_like", ["filter_eval_shape", "ecliptic.filter_eval_shape", "jax.eval_shape"]
)
def test_like_from_eval_shape_both_ways(make_like):
    model = _mlp()
    if make_like == "filter_eval_shape":
        like = equinox.filter_eval_shape(_mlp)
    elif make_like == "ecliptic.filter_eval_shape":
        like = ecliptic.filter_eval_shape(_mlp)
    else:
        params, static = equinox.partition(model, equinox.is_array)
        like = equinox.combine(jax.eval_shape(lambda: params), static)
    assert isinstance(like.layers[0].weight, jax.ShapeDtypeStruct)
    from_equinox = ecliptic.tree_deserialise_leaves(
        io.BytesIO(_bytes(equinox, model)), like
    )
    from_ecliptic = equinox.tree_deserialise_leaves(
        io.BytesIO(_bytes(ecliptic, model)), like
    )
    assert_trees_identical(from_equinox, model)
    assert_trees_identical(from_ecliptic, model)


def _equinox_can_load(x) -> bool:
    """Equinox loads ml_dtypes back only for bfloat16 JAX arrays and scalars."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype == jnp.float8_e5m2:  # saved with descr '<f1'
        return dtype is None
    if isinstance(x, np.ndarray):
        return dtype.kind != "V"
    return dtype.kind != "V" or dtype == jnp.bfloat16


@settings(max_examples=30, deadline=None)
@given(tree=trees, use_abstract=st.booleans())
def test_generated_trees_load_across(tree, use_abstract):
    like = abstract(tree) if use_abstract else tree
    a = ecliptic.tree_deserialise_leaves(io.BytesIO(_bytes(equinox, tree)), like)
    assert_trees_identical(a, tree)
    exotic = not all(_equinox_can_load(x) for x in jax.tree.leaves(tree))
    if not exotic:
        b = equinox.tree_deserialise_leaves(io.BytesIO(_bytes(ecliptic, tree)), like)
        assert_trees_identical(b, tree)


def test_mismatches_are_runtime_errors_in_both():
    data = _bytes(equinox, (jnp.ones(3),))
    for module in (equinox, ecliptic):
        with pytest.raises(RuntimeError):
            module.tree_deserialise_leaves(io.BytesIO(data), (jnp.ones(4),))


def test_trailing_data_differs_deliberately():
    data = _bytes(equinox, (jnp.ones(3), jnp.ones(2)))
    out = equinox.tree_deserialise_leaves(io.BytesIO(data), (jnp.ones(3),))
    assert out[0].shape == (3,)  # the reference silently ignores the rest
    with pytest.raises(ecliptic.CheckpointError, match="unexpected data at byte"):
        ecliptic.tree_deserialise_leaves(io.BytesIO(data), (jnp.ones(3),))


def _equinox_recipe_save(f, hyperparams, model):
    # Equinox's documented recipe, verbatim in spirit.
    f.write((json.dumps(hyperparams) + "\n").encode())
    equinox.tree_serialise_leaves(f, model)


def _equinox_recipe_load(f):
    hyperparams = json.loads(f.readline().decode())
    model = equinox.nn.MLP(**hyperparams, key=jr.PRNGKey(0))
    return equinox.tree_deserialise_leaves(f, model)


def test_hyperparameter_files_load_both_ways(tmp_path):
    hyper = {"in_size": 2, "out_size": 3, "width_size": 4, "depth": 1}
    model = equinox.nn.MLP(**hyper, key=jr.PRNGKey(5))
    make = lambda **h: equinox.nn.MLP(**h, key=jr.PRNGKey(0))

    with open(tmp_path / "theirs.eqx", "wb") as f:
        _equinox_recipe_save(f, hyper, model)
    loaded, got = ecliptic.load_with_hyperparameters(tmp_path / "theirs.eqx", make)
    assert got == hyper
    assert_trees_identical(loaded, model)

    ecliptic.save_with_hyperparameters(tmp_path / "ours.eqx", hyper, model)
    with open(tmp_path / "ours.eqx", "rb") as f:
        assert_trees_identical(_equinox_recipe_load(f), model)


def test_ecliptic_and_equinox_models_share_checkpoints(tmp_path):
    kwargs = dict(in_size=3, out_size=2, width_size=5, depth=2)
    ours = ecliptic.nn.MLP(**kwargs, key=jr.PRNGKey(1))
    theirs = equinox.nn.MLP(**kwargs, key=jr.PRNGKey(2))
    x = jnp.arange(3.0)

    ecliptic.tree_serialise_leaves(tmp_path / "ours", ours)
    like = equinox.filter_eval_shape(equinox.nn.MLP, **kwargs, key=jr.PRNGKey(0))
    as_equinox = equinox.tree_deserialise_leaves(tmp_path / "ours", like)
    assert_trees_identical(as_equinox(x), ours(x))

    equinox.tree_serialise_leaves(tmp_path / "theirs", theirs)
    like = ecliptic.filter_eval_shape(ecliptic.nn.MLP, **kwargs, key=jr.PRNGKey(0))
    as_ecliptic = ecliptic.tree_deserialise_leaves(tmp_path / "theirs", like)
    assert_trees_identical(as_ecliptic(x), theirs(x))
