from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ecliptic as ec

from .helpers import getter, Linear, make_mlp, pytrees, same


#
# tree_at
#


def test_tree_at_leaf_subtree_and_sequence():
    tree = [1, [2, {"a": 3, "b": 4}]]
    assert ec.tree_at(lambda t: t[1][1]["a"], tree, 5) == [1, [2, {"a": 5, "b": 4}]]
    assert tree == [1, [2, {"a": 3, "b": 4}]]  # input untouched
    assert ec.tree_at(lambda t: t[1], tree, "x") == [1, "x"]
    assert ec.tree_at(lambda t: (t[0], t[1][1]), tree, ("A", "B")) == ["A", [2, "B"]]
    assert ec.tree_at(lambda t: [], tree, []) == tree
    # a leaf may be replaced by a subtree, and a subtree by a leaf
    assert ec.tree_at(lambda t: t[0], tree, (7, [8])) == [(7, [8]), tree[1]]


def test_tree_at_replace_fn_sees_the_original_node():
    tree = [1, [2, {"a": 3}]]
    out = ec.tree_at(lambda t: t[1], tree, replace_fn=lambda x: (x, x))
    assert out == [1, (tree[1], tree[1])]
    calls = []
    out = ec.tree_at(
        lambda t: (t[1][0], t[0]), tree, replace_fn=lambda x: calls.append(x) or -x
    )
    assert out == [-1, [-2, {"a": 3}]] and calls == [1, 2]  # in tree order


def test_tree_at_on_modules_surgery_and_leaves(getkey):
    mlp = make_mlp(3)
    new = Linear(jnp.zeros((2, 2)), jnp.zeros(2))
    out = ec.tree_at(lambda m: m.layers[-1], mlp, new)
    assert out.layers[2] is new and out.layers[0] is mlp.layers[0]
    assert out.layers[0].weight is mlp.layers[0].weight
    out = ec.tree_at(
        lambda m: (m.layers[0].weight, m.activation), mlp, (None, jax.nn.relu)
    )
    assert out.layers[0].weight is None and out.activation is jax.nn.relu
    assert jtu.tree_structure(mlp) == jtu.tree_structure(make_mlp(3))


def test_tree_at_never_runs_init_or_check_init():
    calls = []

    class Checked(ec.Module):
        x: Any

        def __init__(self, x):
            calls.append("init")
            self.x = x

        def __check_init__(self):
            calls.append("check")
            if not isinstance(self.x, jax.Array):
                raise ValueError("x must be an array")

    m = Checked(jnp.ones(1))
    calls.clear()
    out = ec.tree_at(lambda c: c.x, m, "not an array")
    assert out.x == "not an array" and calls == []


def test_tree_at_empty_tuples_are_distinct():
    assert ec.tree_at(lambda t: t[0], ((), ()), 1) == (1, ())
    assert ec.tree_at(lambda t: t[1], ((), ()), 1) == ((), 1)
    assert ec.tree_at(lambda t: t["b"], {"a": (), "b": ()}, replace_fn=len) == {
        "a": (),
        "b": 0,
    }
    mlp = ec.tree_at(lambda m: m.layers, make_mlp(1), ())
    assert ec.tree_at(lambda m: m.layers, mlp, (5,)).layers == (5,)


def test_tree_at_none_when_unique_and_when_not():
    assert ec.tree_at(lambda t: t[1], (1, None), 2) == (1, 2)
    with pytest.raises(ValueError, match=r"selected `None`, which occurs 2 times"):
        ec.tree_at(lambda t: t[0], (None, None, 1), True)
    with pytest.raises(ValueError, match=r"is_leaf=lambda x: x is None\)`"):
        ec.tree_at(lambda t: t[0], (None, None, 1), True)
    out = ec.tree_at(lambda t: t[0], (None, None, 1), True, is_leaf=lambda x: x is None)
    assert out == (True, None, 1)


def test_tree_at_is_leaf_selects_whole_subtree():
    tree = [(1, 2), (3, 4)]
    out = ec.tree_at(lambda t: t[1], tree, "x", is_leaf=lambda x: type(x) is tuple)
    assert out == [(1, 2), "x"]


def test_tree_at_error_shows_the_call():
    with pytest.raises(
        ValueError, match=r"`ecliptic.tree_at\(lambda t: \[x for x in t"
    ):
        ec.tree_at(lambda t: [x for x in t if isinstance(x, int)], [1, 2.0, 3], (5, 6))


def test_tree_at_leaf_dependent_where_raises():
    with pytest.raises(ValueError, match="by the structure of `pytree` only"):
        ec.tree_at(lambda t: [x for x in t if isinstance(x, int)], [1, 2.0, 3], (5, 6))


def test_tree_at_replace_and_replace_fn_exclusive():
    with pytest.raises(
        ValueError, match="exactly one of `replace` and `replace_fn`, but got neither"
    ):
        ec.tree_at(lambda t: t[0], [1])
    with pytest.raises(ValueError, match="but got both"):
        ec.tree_at(lambda t: t[0], [1], 2, replace_fn=lambda x: x)


def test_tree_at_replace_length_mismatch():
    with pytest.raises(ValueError, match="selected 2 nodes and `replace` has 3 values"):
        ec.tree_at(lambda t: (t[0], t[1]), [1, 2], (3, 4, 5))


def test_tree_at_replace_not_a_sequence():
    with pytest.raises(TypeError, match="`replace` to be a sequence of 2 values"):
        ec.tree_at(lambda t: (t[0], t[1]), [1, 2], 3)


def test_tree_at_where_returns_foreign_leaf():
    with pytest.raises(TypeError, match="returned 5 of type `int`, which is not part"):
        ec.tree_at(lambda t: 5, [1], 2)


def test_tree_at_where_returns_non_sequence():
    with pytest.raises(TypeError, match="a node of `pytree` or a sequence of nodes"):
        ec.tree_at(lambda t: {"a": t[0]}, [1], 2)


def test_tree_at_where_returns_new_container():
    with pytest.raises(
        ValueError, match=r"node 1 \(a node of type `list`\) is not part"
    ):
        ec.tree_at(lambda t: (t[0], [t[1]]), [1, 2], (3, 4))


@pytest.mark.parametrize("tree", [[[1], 2], (([1],), 2), ((1,), 2)])
def test_tree_at_nested_selection_raises(tree):
    with pytest.raises(ValueError, match="node 1 .* lies inside another selected"):
        ec.tree_at(lambda t: (t[0], t[0][0]), tree, (3, 4))
    with pytest.raises(ValueError, match="node 0 .* lies inside another selected"):
        ec.tree_at(lambda t: (t[0][0], t[0]), tree, replace_fn=str)


def test_tree_at_many_subtrees_in_immutable_tree():
    tree = tuple((i,) for i in range(12))
    out = ec.tree_at(lambda t: t, tree, replace_fn=lambda t: t[::-1])
    assert out == tree[::-1]
    out = ec.tree_at(lambda t: t[1:], tree, replace_fn=lambda t: t[0])
    assert out == ((0,), *range(1, 12))
    calls = []
    out = ec.tree_at(lambda t: (t[3], t[1]), tree, replace_fn=calls.append)
    assert calls[0] is tree[1] and calls[1] is tree[3]  # the original nodes, in order


def test_tree_at_unhashable_treedef_and_jit():
    class Box:
        def __init__(self, x, meta):
            self.x, self.meta = x, meta

    jtu.register_pytree_node(
        Box, lambda b: ((b.x,), b.meta), lambda meta, xs: Box(xs[0], meta)
    )
    box = Box(1, {"unhashable": []})
    assert ec.tree_at(lambda b: b.x, box, 2).x == 2
    out = jax.jit(lambda t: ec.tree_at(lambda u: u[1], t, t[0] * 2))((jnp.ones(1), 0))
    assert jnp.array_equal(out[1], jnp.full(1, 2.0))


def test_tree_at_repeated_calls_are_independent():
    mlp = make_mlp(2)
    a = ec.tree_at(lambda m: m.layers[0].bias, mlp, 1)
    b = ec.tree_at(lambda m: m.layers[0].bias, mlp, 2)
    c = ec.tree_at(lambda m: m.layers[0], mlp, replace_fn=lambda l: l.bias)
    assert (a.layers[0].bias, b.layers[0].bias) == (1, 2)
    assert c.layers[0] is mlp.layers[0].bias


@settings(max_examples=30, deadline=None)
@given(pytrees, st.data())
def test_tree_at_replace_then_read_back(tree, data):
    paths, treedef = jtu.tree_flatten_with_path(tree)
    if not paths:
        return
    k = data.draw(st.integers(0, len(paths) - 1))
    where = getter(paths[k][0])
    marker = object()
    out = ec.tree_at(where, tree, marker)
    assert where(out) is marker
    assert where(tree) is paths[k][1]  # the input is untouched
    flat_out = treedef.flatten_up_to(out)
    for i, (_, leaf) in enumerate(paths):
        assert flat_out[i] is (marker if i == k else leaf)
    back = ec.tree_at(where, out, replace_fn=lambda m: paths[k][1])
    assert same(back, tree)


#
# tree_equal
#


def test_tree_equal_structure_shape_dtype_value():
    a = {"x": jnp.ones(2), "y": (1, "s")}
    assert ec.tree_equal(a, {"x": jnp.ones(2), "y": (1, "s")}) is True
    assert ec.tree_equal(a) is True
    assert ec.tree_equal(a, {"x": jnp.ones(2), "y": [1, "s"]}) is False
    assert ec.tree_equal(a, {"x": jnp.ones(3), "y": (1, "s")}) is False
    assert ec.tree_equal(a, {"x": jnp.ones(2, jnp.int32), "y": (1, "s")}) is False
    assert ec.tree_equal(a, {"x": jnp.zeros(2), "y": (1, "s")}) is False
    assert ec.tree_equal(a, {"x": jnp.ones(2), "y": (2, "s")}) is False
    assert ec.tree_equal(a, a, {"x": jnp.zeros(2), "y": (1, "s")}) is False
    assert ec.tree_equal(jnp.ones(2), 1.0) is False
    assert ec.tree_equal(jnp.array(jnp.nan), jnp.array(jnp.nan)) is False


def test_tree_equal_numpy_vs_jax_and_typematch():
    j, n = jnp.ones(2), np.ones(2, np.float32)
    assert ec.tree_equal(j, n) is True and ec.tree_equal(n, j) is True
    assert ec.tree_equal(n, n.copy()) is True
    assert ec.tree_equal(j, n, typematch=True) is False
    assert (
        ec.tree_equal(1, 1.0) is True and ec.tree_equal(1, 1.0, typematch=True) is False
    )


def test_tree_equal_tolerances():
    a, b = jnp.array([1.0, 2.0]), jnp.array([1.0, 2.001])
    assert ec.tree_equal(a, b) is False
    assert ec.tree_equal(a, b, atol=0.01) is True
    assert ec.tree_equal(np.asarray(a), np.asarray(b), rtol=1e-2) is True
    assert (
        ec.tree_equal(jnp.arange(2), jnp.arange(2) + 1, atol=5) is False
    )  # int: exact


def test_tree_equal_under_jit_is_traced():
    @jax.jit
    def f(x, y):
        out = ec.tree_equal((x, 1), (y, 1))
        assert isinstance(out, jax.core.Tracer)
        return out

    assert bool(f(jnp.ones(2), jnp.ones(2))) and not bool(f(jnp.ones(2), jnp.zeros(2)))
    assert jax.jit(lambda x: ec.tree_equal((x, 1), (x, 2)))(jnp.ones(1)) == False  # noqa: E712


def test_tree_equal_modules():
    assert ec.tree_equal(make_mlp(2), make_mlp(2)) is True
    assert ec.tree_equal(make_mlp(2), make_mlp(3)) is False


def test_tree_equal_needs_a_tree():
    with pytest.raises(TypeError, match="at least one PyTree"):
        ec.tree_equal()


#
# tree_flatten_one_level / tree_check
#


def test_tree_flatten_one_level():
    children, treedef = ec.tree_flatten_one_level({"a": 3, "b": (1, 2)})
    assert children == [3, (1, 2)] and treedef == jtu.tree_structure({"a": 0, "b": 0})
    assert ec.tree_flatten_one_level(4) == ([4], jtu.tree_structure(0))
    assert ec.tree_flatten_one_level(None)[0] == []
    mlp = make_mlp(2)
    children, treedef = ec.tree_flatten_one_level(mlp)
    assert children[0] is mlp.layers and children[1] is jnp.tanh
    assert jtu.tree_unflatten(treedef, children).layers is mlp.layers


def test_tree_flatten_one_level_self_reference():
    x = []
    x.append(x)
    with pytest.raises(ValueError, match="node of type `list` that contains itself"):
        ec.tree_flatten_one_level(x)
    y, z = [], []
    y.append(z)
    z.append(y)
    assert ec.tree_flatten_one_level(y)[0] == [z]  # not an *immediate* self-reference


def test_tree_check_passes():
    a, c = 1, []
    ec.tree_check([a, a])
    ec.tree_check([c, c])
    ec.tree_check([None, None])
    ec.tree_check([[1], [1]])
    ec.tree_check(make_mlp(3))
    module = ec.Module()  # a node without children is fine to repeat
    ec.tree_check([module, module])


def test_tree_check_duplicate_names_both_paths():
    e = [1]
    with pytest.raises(
        ValueError, match=r"`list` at `pytree\[1\]` also appears at `pytree\[0\]`"
    ):
        ec.tree_check([e, e])
    lin = make_mlp(1).layers[0]
    with pytest.raises(ValueError, match=r"at `pytree.layers\[1\]` also appears"):
        ec.tree_check(ec.tree_at(lambda m: m.layers, make_mlp(1), (lin, lin)))


def test_tree_check_self_reference():
    x = []
    x.append(x)
    with pytest.raises(
        ValueError, match=r"`list` at `pytree` contains itself, at `pytree\[0\]`"
    ):
        ec.tree_check(x)
    y, z = [], []
    y.append(z)
    z.append(y)
    with pytest.raises(ValueError, match=r"contains itself, at `pytree\[0\]\[0\]`"):
        ec.tree_check(y)


def test_tree_at_path_copy_shares_only_immutable_nodes():
    mlp = make_mlp(3)
    out = ec.tree_at(lambda m: m.layers[1].weight, mlp, 0)
    assert out.layers[1].weight == 0 and out.layers[1].bias is mlp.layers[1].bias
    assert out.layers[0] is mlp.layers[0]  # untouched immutable nodes are shared
    assert mlp.layers[1].weight is not out.layers[1].weight
    tree = {"a": [1, 2], "b": (3, [4])}
    out = ec.tree_at(lambda t: t["b"][0], tree, 0)
    assert out == {"a": [1, 2], "b": (0, [4])}
    assert out["a"] is not tree["a"] and out["b"][1] is not tree["b"][1]


def test_tree_at_many_leaves_and_mixed_selection():
    tree = tuple(range(20))
    out = ec.tree_at(lambda t: t[::2], tree, replace_fn=lambda x: -x)
    assert out == tuple(-x if x % 2 == 0 else x for x in range(20))
    out = ec.tree_at(lambda t: (t[0], t[1]), ((1, 2), 3), ("a", "b"))
    assert out == ("a", "b")
