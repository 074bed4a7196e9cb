"""A large model stays on the fast path (issue 20).

A model of 2,000 array leaves, called again and again through one `filter_jit` with
new arrays of the same structure (and other jitted calls in between), is served by
its guard after warm-up: no flatten, no retrace. A new structure or a new static value
still retraces and gives the right answer. Counts only, no timing.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import ecliptic
from ecliptic._dispatch import dispatch_info, is_memoised

from ..helpers import counted


N_LAYERS = 1000


class _Layer(ecliptic.Module):
    weight: jax.Array
    bias: jax.Array
    name: str = ecliptic.field(static=True, default="layer")


class _Tower(ecliptic.Module):
    layers: tuple
    scale: float = ecliptic.field(static=True, default=1.0)

    def __call__(self, x):
        # Every 100th layer and the last (cheap to compile, spread over the model).
        picked = (*self.layers[::100], self.layers[-1])
        out = self.scale * x + len(self.layers)
        for layer in picked:
            out = out + layer.weight * layer.bias
        return out


def _tower(n: int = N_LAYERS, scale: float = 1.0) -> _Tower:
    base = jnp.arange(2.0) / n
    layers = tuple(_Layer(base + i / n, base - i / n) for i in range(n))
    return _Tower(layers, scale)


def _nudge(layer: _Layer) -> _Layer:
    return jax.tree.map(lambda a: a + 0.001, layer)


def _step(model: _Tower, x: jax.Array) -> tuple[_Tower, jax.Array]:
    """A training step: the output, and the model with new arrays (every 100th
    layer changed, the others passed through)."""
    new = ecliptic.tree_at(lambda m: m.layers[::100], model, replace_fn=_nudge)
    return new, model(x)


def _others(x: jax.Array, other_jit: Any, other_filter_jit: Any) -> None:
    """Other jitted work between two calls of the big one."""
    np.testing.assert_allclose(other_jit(x), x * 2)
    np.testing.assert_allclose(other_filter_jit(x, "s"), x + 1)


def test_a_large_model_is_served_by_its_guard_after_warm_up():
    f = counted(_step)
    jstep = ecliptic.filter_jit(f)
    other_jit = jax.jit(lambda a: a * 2)
    other_filter_jit = ecliptic.filter_jit(lambda a, s: a + len(s))
    model = ref = _tower()
    assert len(jax.tree.leaves(model)) == 2 * N_LAYERS
    x = jnp.ones(2)
    for _ in range(2):  # warm-up: the ordinary path, then a guard is made
        model, y = jstep(model, x)
        ref, want = _step(ref, x)
    warm = dispatch_info(jstep)
    for _ in range(8):
        _others(x, other_jit, other_filter_jit)
        model, y = jstep(model, x)  # the model the last step returned
        ref, want = _step(ref, x)
        np.testing.assert_allclose(y, want, rtol=1e-5)
        assert is_memoised(model)
    info = dispatch_info(jstep)
    assert info.ordinary_calls == warm.ordinary_calls
    assert info.guard_calls == warm.guard_calls + 8
    assert len(f.traces) == 1
    np.testing.assert_allclose(model.layers[-1].weight, ref.layers[-1].weight)

    # New arrays of the same structure made outside: walked by the guard.
    for _ in range(2):
        model = jax.tree.map(lambda a: a + 1, model)
        _others(x, other_jit, other_filter_jit)
        _, y = jstep(model, x)
        np.testing.assert_allclose(y, model(x), rtol=1e-5)
    assert dispatch_info(jstep).ordinary_calls == warm.ordinary_calls
    assert len(f.traces) == 1


def test_a_large_model_retraces_on_a_new_structure_or_static():
    f = counted(lambda m, x: m(x))
    jf = ecliptic.filter_jit(f)
    x = jnp.ones(2)
    model = _tower()
    for _ in range(4):
        np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)
    assert dispatch_info(jf).guard_calls == 2 and len(f.traces) == 1

    deeper = _Tower((*model.layers, model.layers[0]))  # one more layer
    np.testing.assert_allclose(jf(deeper, x), deeper(x), rtol=1e-5)
    assert len(f.traces) == 2

    scaled = _Tower(model.layers, scale=3.0)  # a new static field
    np.testing.assert_allclose(jf(scaled, x), scaled(x), rtol=1e-5)
    assert len(f.traces) == 3

    renamed = list(model.layers)  # a new static field deep inside
    renamed[N_LAYERS // 2] = _Layer(renamed[0].weight, renamed[0].bias, name="x")
    renamed = _Tower(tuple(renamed))
    np.testing.assert_allclose(jf(renamed, x), renamed(x), rtol=1e-5)
    assert len(f.traces) == 4

    before = dispatch_info(jf)
    np.testing.assert_allclose(jf(model, x), model(x), rtol=1e-5)  # still guarded
    assert dispatch_info(jf).guard_calls == before.guard_calls + 1
    assert len(f.traces) == 4
