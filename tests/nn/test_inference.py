import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

import ecliptic
import ecliptic.nn as nn
from ecliptic._module import Module
from ecliptic.nn._misc import with_attr


class Flag(Module):
    inference: bool
    weight: jnp.ndarray


class Outer(Module):
    inference: bool
    inner: Flag
    others: tuple


def _flags(tree):
    out = []

    def visit(x):
        if hasattr(x, "inference"):
            out.append(x.inference)
        for child in jtu.tree_leaves(
            x, is_leaf=lambda y: y is not x and isinstance(y, Module)
        ):
            if isinstance(child, Module):
                visit(child)

    visit(tree)
    return out


def test_sets_nested_flags():
    model = Outer(False, Flag(False, jnp.ones(2)), (Flag(False, jnp.zeros(1)), 3))
    on = nn.inference_mode(model)
    assert _flags(on) == [True, True, True]
    assert on.others[1] == 3
    assert on.inner.weight is model.inner.weight
    off = nn.inference_mode(on, value=False)
    assert _flags(off) == [False, False, False]
    assert jtu.tree_structure(off) == jtu.tree_structure(model)


def test_batch_norm_and_tree_inference_alias():
    bn = nn.BatchNorm(3, "batch", mode="batch")
    assert ecliptic.tree_inference(bn).inference is True
    assert ecliptic.tree_inference is nn.inference_mode


def test_leaves_other_pytrees_alone():
    tree = {"a": jnp.ones(2), "inference": False, "b": [1, "x"]}
    out = nn.inference_mode(tree)
    assert out["inference"] is False  # a dict key is not an attribute
    assert out["b"] == [1, "x"]


def test_with_attr_rejects_non_child():
    flag = Flag(False, jnp.ones(2))
    new = with_attr(flag, "weight", jnp.zeros(2))
    assert jnp.all(new.weight == 0)
    with pytest.raises(ValueError, match="expected `bias` to be an array field"):
        with_attr(flag, "bias", jnp.zeros(2))
