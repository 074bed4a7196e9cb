"""The same Module code, run with Equinox and with ecliptic, behaves the same."""

import dataclasses
import inspect

import equinox
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

import ecliptic


LIBS = [equinox, ecliptic]


def _define(lib):
    class Linear(lib.Module):
        weight: jax.Array
        bias: jax.Array
        features: int = lib.field(static=True)

        def __init__(self, features):
            self.weight = jnp.arange(features * features, dtype=jnp.float32).reshape(
                features, features
            )
            self.bias = jnp.ones(features)
            self.features = features

        def __call__(self, x):
            return self.weight @ x + self.bias

        def scaled(self, x, s=2.0):
            return s * self(x)

    class Net(lib.Module):
        layers: tuple
        name: str = "net"
        act: object = jax.nn.relu

    class WithConverter(lib.Module):
        x: float = lib.field(converter=float)
        y: list = lib.field(default_factory=list)

    return Linear, Net, WithConverter


@pytest.fixture(scope="module")
def both():
    return {lib.__name__: _define(lib) for lib in LIBS}


def test_key_paths_and_leaves_match(both):
    outs = []
    for Linear, Net, _ in both.values():
        net = Net((Linear(2), Linear(3)))
        flat = jtu.tree_flatten_with_path(net)[0]
        outs.append([(jtu.keystr(p), type(v).__name__) for p, v in flat])
    assert outs[0] == outs[1]
    assert outs[1][0] == (".layers[0].weight", "ArrayImpl")


def test_repr_matches(both):
    reprs = [repr(Net((Linear(2),))) for Linear, Net, _ in both.values()]
    assert reprs[0] == reprs[1]
    reprs = [repr(W(3)) for _, _, W in both.values()]
    assert reprs[0] == reprs[1]
    assert reprs[1].endswith("WithConverter(x=3.0, y=[])")


def test_equality_matches(both):
    for Linear, Net, _ in both.values():
        assert bool(Net((Linear(2),)) == Net((Linear(2),)))
        assert not bool(Net((Linear(2),)) == Net((Linear(3),)))


def test_signatures_match(both):
    sigs = [str(inspect.signature(W)) for _, _, W in both.values()]
    assert sigs[0] == sigs[1]
    sigs = [str(inspect.signature(Linear(2).scaled)) for Linear, _, _ in both.values()]
    assert sigs[0] == sigs[1] == "(x, s=2.0)"


def test_bound_method_leaves_match(both):
    outs = []
    for Linear, _, _ in both.values():
        method = Linear(2).scaled
        outs.append(([x.shape for x in jtu.tree_leaves(method)], method.__name__))
        assert float(jnp.sum(method(jnp.ones(2)))) == float(
            jnp.sum(2 * Linear(2)(jnp.ones(2)))
        )
    assert outs[0] == outs[1]


def test_error_types_match():
    for lib in LIBS:

        class M(lib.Module):
            x: int

            def __init__(self):
                pass

        with pytest.raises(TypeError, match="Field 'x' was not initialized"):
            M()

        class F(lib.Module):
            x: int

        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign"):
            F(1).x = 2

        class A(lib.Module):
            x: lib.AbstractVar[int]

        with pytest.raises(TypeError, match="abstract"):
            A()


def test_grad_through_module_matches(both):
    grads = []
    for Linear, _, _ in both.values():
        g = jax.grad(lambda m: jnp.sum(m(jnp.ones(2)) ** 2))(Linear(2))
        grads.append((g.weight, g.bias))
    for a, b in zip(*grads):
        assert jnp.allclose(a, b)
