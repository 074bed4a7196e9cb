"""`tree_summary`: the table of a model's arrays, and the rows behind it."""

import io

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx


def _mlp():
    return eqx.nn.MLP(4, 2, 8, 2, key=jr.PRNGKey(0))


def _param_count(tree):
    return sum(np.size(x) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_array)))


def test_totals_equal_the_parameter_count():
    model = _mlp()
    summary = eqx.tree_summary(model, file=None)
    assert summary.count == _param_count(model) == 4 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    assert summary.bytes == 4 * summary.count
    assert summary.trainable_count == summary.count and summary.frozen_count == 0


def test_rows_name_paths_layers_shapes_and_dtypes():
    model = _mlp()
    rows = eqx.tree_summary(model, file=None).rows
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_array))
    assert [r.path for r in rows] == [jax.tree_util.keystr(p) for p, _ in leaves]
    assert rows[0].path == ".layers[0].weight" and rows[0].layer == "Linear"
    assert [r.shape for r in rows] == [tuple(x.shape) for _, x in leaves]
    assert all(r.dtype == "float32" for r in rows)


def test_trainable_split_follows_the_filter_spec():
    model = _mlp()
    frozen_first = jax.tree.map(lambda _: True, model)
    frozen_first = eqx.tree_at(
        lambda m: (m.layers[0].weight, m.layers[0].bias),
        frozen_first,
        replace=(False, False),
    )
    summary = eqx.tree_summary(model, frozen_first, file=None)
    assert summary.frozen_count == 4 * 8 + 8
    assert summary.trainable_count == summary.count - summary.frozen_count
    params, _ = eqx.partition(model, frozen_first)
    assert summary.trainable_count == _param_count(params)


def test_mixed_dtypes_keys_and_static_fields():
    tree = {
        "w": jnp.ones((2, 3), jnp.bfloat16),
        "i": jnp.arange(5),
        "key": jr.key(0),
        "act": jax.nn.relu,
        "n": 3,
    }
    summary = eqx.tree_summary(tree, file=None)
    by_path = {r.path: r for r in summary.rows}
    assert set(by_path) == {"['w']", "['i']", "['key']"}  # arrays only
    assert by_path["['w']"].bytes == 12 and by_path["['w']"].trainable
    assert by_path["['i']"].dtype == "int32" and not by_path["['i']"].trainable
    assert not by_path["['key']"].trainable and by_path["['key']"].layer == ""


def test_shape_dtype_structs_need_nothing_built():
    abstract = eqx.filter_eval_shape(eqx.nn.MLP, 4, 2, 8, 2, key=jr.PRNGKey(0))
    summary = eqx.tree_summary(abstract, file=None)
    assert summary.count == _param_count(_mlp())
    assert summary.trainable_count == summary.count


def test_prints_a_table_with_totals():
    out = io.StringIO()
    summary = eqx.tree_summary(_mlp(), file=out)
    text = out.getvalue()
    assert text.strip() == str(summary)
    assert ".layers[2].bias" in text and "Linear" in text
    assert f"total: {summary.count:,} params" in text
    assert "frozen: 0 params" in text


def test_inside_jit():
    @eqx.filter_jit
    def count(model):
        return eqx.tree_summary(model, file=None).count

    # The count is static, so it comes back as a constant.
    assert int(count(_mlp())) == _param_count(_mlp())


def test_bad_filter_spec():
    with pytest.raises(ValueError, match="`trainable` to be a callable"):
        eqx.tree_summary(_mlp(), [True, False], file=None)
