"""`ω`: leaf-by-leaf arithmetic on PyTrees."""

import operator

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

from ecliptic.internal import ω


A = {"a": jnp.array([1.0, 2.0]), "b": (jnp.array(3.0), jnp.array([[4.0]]))}
B = {"a": jnp.array([5.0, 6.0]), "b": (jnp.array(7.0), jnp.array([[8.0]]))}


def _tree_equal(x, y):
    return all(jtu.tree_leaves(jtu.tree_map(jnp.array_equal, x, y)))


@pytest.mark.parametrize(
    "op",
    [
        operator.add,
        operator.sub,
        operator.mul,
        operator.truediv,
        operator.floordiv,
        operator.mod,
        operator.pow,
        operator.lt,
        operator.le,
        operator.eq,
        operator.ne,
        operator.gt,
        operator.ge,
    ],
)
def test_binary_with_tree_and_scalar(op):
    assert _tree_equal(op(ω(A), ω(B)).ω, jtu.tree_map(op, A, B))
    assert _tree_equal(op(ω(A), 2.0).ω, jtu.tree_map(lambda x: op(x, 2.0), A))
    assert _tree_equal(op(2.0, ω(A)).ω, jtu.tree_map(lambda x: op(2.0, x), A))


def test_integer_and_bitwise_operators():
    x = {"i": jnp.array([1, 6]), "j": jnp.array(3)}
    for op in (operator.and_, operator.or_, operator.xor, operator.lshift):
        assert _tree_equal(op(ω(x), 1).ω, jtu.tree_map(lambda v, o=op: o(v, 1), x))
        assert _tree_equal(op(1, ω(x)).ω, jtu.tree_map(lambda v, o=op: o(1, v), x))
    assert _tree_equal((~ω(x)).ω, jtu.tree_map(operator.invert, x))


def test_matmul():
    m = {"m": jnp.eye(2)}
    v = {"m": jnp.array([1.0, 2.0])}
    assert _tree_equal((ω(m) @ ω(v)).ω, v)


def test_unary():
    assert _tree_equal((-ω(A)).ω, jtu.tree_map(operator.neg, A))
    assert _tree_equal((+ω(A)).ω, A)
    assert _tree_equal(abs(-ω(A)).ω, A)


def test_rpow_spelling_and_example_from_docs():
    out = (A**ω + B**ω * 2).ω
    assert _tree_equal(out, jtu.tree_map(lambda x, y: x + y * 2, A, B))
    assert _tree_equal((ω(A) + ω(B) * 2).ω, out)


def test_works_inside_jit():
    out = jax.jit(lambda x, y: (ω(x) - ω(y)).ω)(A, B)
    assert _tree_equal(out, jtu.tree_map(operator.sub, A, B))


def test_getitem_call_and_at():
    v = {"x": jnp.arange(3.0), "y": jnp.arange(3.0) + 10}
    assert _tree_equal(ω(v)[1:].ω, jtu.tree_map(lambda a: a[1:], v))
    assert _tree_equal(ω(v).call(jnp.exp).ω, jtu.tree_map(jnp.exp, v))
    for kind in ("set", "add", "multiply", "divide", "power", "min", "max"):
        expected = jtu.tree_map(lambda a, k=kind: getattr(a.at[1], k)(2.0), v)
        assert _tree_equal(getattr(ω(v).at[1], kind)(2.0).ω, expected)
    other = {"x": jnp.array(7.0), "y": jnp.array(8.0)}
    out = ω(v).at[0].set(ω(other)).ω
    assert out["x"][0] == 7.0 and out["y"][0] == 8.0


def test_is_leaf():
    tree = [(1.0, 2.0), (3.0, 4.0)]
    out = ω(tree, is_leaf=lambda x: isinstance(x, tuple)).call(lambda t: t[0] + t[1]).ω
    assert out == [3.0, 7.0]


def test_structure_mismatch_is_value_error():
    with pytest.raises(ValueError, match="structures must match"):
        ω(A) + ω([1.0])
    with pytest.raises(ValueError, match="structures must match"):
        ω(A).at[0].set(ω([1.0]))


def test_is_leaf_mismatch_is_value_error():
    with pytest.raises(ValueError, match="is_leaf"):
        ω([1.0], is_leaf=lambda x: False) + ω([1.0])


def test_unknown_operand_is_runtime_error():
    with pytest.raises(RuntimeError, match="`other`"):
        ω(A) + "text"


def test_repr_and_hash():
    assert repr(ω(1)) == "ω(1)"
    assert isinstance(hash(ω(1)), int)
