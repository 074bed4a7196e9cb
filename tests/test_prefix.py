"""The prefix-spec matcher (`ecliptic._prefix`), directly and through the public
APIs that take prefix specs."""

import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic as eqx
from ecliptic._prefix import match_prefix, PrefixSpec


def _is_none(x):
    return x is None


def test_single_leaf_spec_covers_the_whole_tree():
    tree = {"a": 1, "b": (2, 3)}
    match = match_prefix("spec", tree)
    assert match.specs == ["spec"] and match.sizes == [3]
    assert match.leaves == [1, 2, 3]
    assert match.leaf_specs() == ["spec"] * 3
    assert match.unflatten([10, 20, 30]) == {"a": 10, "b": (20, 30)}


def test_prefix_spec_runs_and_rebuild():
    tree = [(1, 2), {"x": 3}, 4]
    match = match_prefix(["s0", "s1", "s2"], tree)
    assert list(match.runs()) == [("s0", 0, 2), ("s1", 2, 3), ("s2", 3, 4)]
    assert match.leaf_specs() == ["s0", "s0", "s1", "s2"]
    assert match.unflatten([5, 6, 7, 8]) == [(5, 6), {"x": 7}, 8]


def test_paths_are_full_key_paths():
    tree = [(1, 2), {"x": 3}]
    match = match_prefix(["s0", "s1"], tree, with_paths=True)
    items = [(s, jtu.keystr(p), leaf) for s, p, leaf in match.items()]
    assert items == [("s0", "[0][0]", 1), ("s0", "[0][1]", 2), ("s1", "[1]['x']", 3)]
    single = match_prefix("s", tree, with_paths=True)
    assert [jtu.keystr(p) for p in single.paths] == ["[0][0]", "[0][1]", "[1]['x']"]
    assert match_prefix(["s0", "s1"], tree).paths is None


def test_is_leaf_passes_nodes_whole():
    tree = [(1, 2), (3, 4)]
    match = match_prefix(["a", "b"], tree, is_leaf=lambda x: x == (3, 4))
    assert match.leaves == [1, 2, (3, 4)]
    assert match.sizes == [2, 1]
    whole = match_prefix(["a", "b"], tree, is_leaf=lambda x: isinstance(x, tuple))
    assert whole.leaves == [(1, 2), (3, 4)]


def test_none_spec_leaves():
    # By default `None` in the spec is an empty node, matching only `None`.
    assert match_prefix([None, "s"], [None, 1]).leaves == [1]
    with pytest.raises(ValueError):
        match_prefix([None, "s"], [0, 1])
    # With `spec_is_leaf`, `None` is a spec leaf covering a whole subtree.
    match = match_prefix([None, "s"], [(0, 1), 2], spec_is_leaf=_is_none)
    assert match.leaf_specs() == [None, None, "s"]


def test_mismatch_raises():
    with pytest.raises(ValueError):
        match_prefix(["a", "b"], [1, 2, 3])
    with pytest.raises((ValueError, TypeError)):
        match_prefix({"a": 1}, [1])


def test_structure_is_hashable_and_leafless():
    prefix = PrefixSpec([1, 2])
    assert not prefix.is_single and PrefixSpec(eqx.is_array).is_single
    m1 = prefix.match([(jnp.ones(1), 2), 3])
    m2 = prefix.match([(jnp.zeros(1), 5), 6])
    assert m1.structure == m2.structure
    assert hash(m1.structure) == hash(m2.structure)
    assert not any(map(eqx.is_array, jtu.tree_leaves(m1.structure)))
    assert m1.structure.unflatten([1, 2, 3]) == [(1, 2), 3]


# -- through the public APIs --------------------------------------------------------


def test_filter_with_prefix_spec_and_is_leaf():
    tree = [(jnp.ones(1), 1), {"x": 2.0, "y": jnp.zeros(2)}]
    out = eqx.filter(tree, [True, eqx.is_array])
    assert out[0][1] == 1 and out[1]["x"] is None
    np.testing.assert_allclose(out[1]["y"], [0.0, 0.0])
    kept = eqx.filter(tree, [False, True], is_leaf=lambda x: isinstance(x, dict))
    assert kept[0] == (None, None) and kept[1] is tree[1]


def test_vmap_prefix_axes():
    f = eqx.filter_vmap(lambda p, y: p["a"] * y, in_axes=({"a": 0}, None))
    np.testing.assert_allclose(f({"a": jnp.arange(3.0)}, 2.0), [0.0, 2.0, 4.0])
    out = eqx.filter_vmap(lambda x: (x, x), out_axes=(0, 1))(jnp.ones((3, 2)))
    assert out[0].shape == (3, 2) and out[1].shape == (2, 3)
