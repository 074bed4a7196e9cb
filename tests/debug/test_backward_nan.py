import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic as eqx
from ecliptic import EquinoxRuntimeError
from ecliptic.debug import backward_nan


class _Layer(eqx.Module):
    weight: jax.Array
    bias: jax.Array
    activation: str = eqx.field(static=True, default="relu")


class _Net(eqx.Module):
    layers: list
    scale: jax.Array


def _net():
    def layer():
        return _Layer(jnp.ones((2, 2)), jnp.zeros(2))

    return _Net([layer(), layer()], jnp.array(2.0))


def _net_loss(net):
    net = backward_nan(net, name="net", terminate=False)
    # The second layer's bias gets a NaN cotangent (sqrt at -1); its weight and
    # the first layer's bias get none.
    nan_part = jnp.sqrt(net.layers[1].bias - 1.0).sum()
    return nan_part + net.scale * net.layers[0].weight.sum()


def _leaf_block(out, path):
    """The lines printed for the leaf at `path`, up to the next leaf."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {path}:"))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("   ")),
        len(lines),
    )
    return "\n".join(lines[start:end])


def test_forward_identity_and_prints_cotangent(capsys):
    def loss(x):
        return (3.0 * backward_nan(x, name="watch")).sum()

    g = jax.grad(loss)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [3.0, 3.0])
    out = capsys.readouterr().out
    assert "'watch'" in out
    assert "float32[2]" in out
    assert "primal=[1., 2.]" in out
    assert "cotangent=[3., 3.]" in out


@pytest.mark.parametrize("jit", [False, True])
def test_model_report_names_each_leaf_by_key_path(capsys, jit):
    grad = eqx.filter_grad(_net_loss)
    grads = (eqx.filter_jit(grad) if jit else grad)(_net())
    assert bool(jnp.isnan(grads.layers[1].bias).all())
    out = capsys.readouterr().out
    paths = [".layers[0].weight", ".layers[0].bias", ".layers[1].weight"]
    paths += [".layers[1].bias", ".scale"]
    for path in paths:
        assert f"  {path}: float32" in out
    assert ".activation" not in out  # static fields are not leaves
    bad = _leaf_block(out, ".layers[1].bias")
    assert "float32[2]" in bad and "NaN" in bad and "cotangent=[nan, nan]" in bad
    good = _leaf_block(out, ".layers[0].weight")
    assert "NaN" not in good
    assert re.search(r"cotangent=\[\[2\., 2\.\],\s+\[2\., 2\.\]\]", good)
    assert "cotangent=[" not in _leaf_block(out, ".layers[1].weight")  # nothing back
    assert out.strip().splitlines()[-1].endswith(".layers[1].bias")  # the summary


def test_integer_and_other_leaves_are_shown_and_pass_through(capsys):
    def loss(x):
        tree = backward_nan((x, jnp.arange(2), "tag", jr.key(0)), terminate=False)
        return (tree[0] * 2.0).sum()

    np.testing.assert_allclose(jax.grad(loss)(jnp.ones(3)), [2.0, 2.0, 2.0])
    out = capsys.readouterr().out
    ints = _leaf_block(out, "[1]")
    assert "int32[2]" in ints and "primal=[0, 1]" in ints
    assert "'tag'" in _leaf_block(out, "[2]")
    assert "key<" in _leaf_block(out, "[3]")
    tree = (jnp.ones(2), jnp.arange(2), "tag")
    assert backward_nan(tree)[2] == "tag"
    np.testing.assert_array_equal(backward_nan(tree)[1], tree[1])


def test_nan_cotangent_raises_naming_the_leaf():
    def loss(net):
        net = backward_nan(net, name="net")
        return jnp.sqrt(net.layers[1].bias - 1.0).sum()

    with pytest.raises(
        (EquinoxRuntimeError, jax.errors.JaxRuntimeError),
        match=re.escape("NaN in the cotangent of `.layers[1].bias`"),
    ):
        jax.block_until_ready(eqx.filter_jit(eqx.filter_grad(loss))(_net()))


def test_nan_cotangent_raises_without_jit():
    def loss(x):
        return jnp.sqrt(backward_nan(x) - 1.0).sum()  # d/dy sqrt(-1) is NaN

    with pytest.raises(EquinoxRuntimeError, match="NaN in the cotangent"):
        jax.block_until_ready(jax.grad(loss)(jnp.zeros(2)))


def test_terminate_false_lets_nan_through(capsys):
    def loss(x):
        return jnp.sqrt(backward_nan(x, terminate=False) - 1.0).sum()

    g = jax.grad(loss)(jnp.zeros(2))
    assert bool(jnp.isnan(g).all())
    assert "cotangent=[nan, nan]" in capsys.readouterr().out
