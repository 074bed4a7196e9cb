import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import ecliptic.nn as nn
from ecliptic._module import Module


class Counter(nn.StatefulLayer):
    index: nn.StateIndex

    def __init__(self, init=0.0):
        self.index = nn.StateIndex(jnp.array(init))

    def __call__(self, x, state, *, key=None):
        count = state.get(self.index)
        return x + count, state.set(self.index, count + 1)


class Pair(Module):
    a: Counter
    b: Counter


def test_state_index_rejects_function():
    with pytest.raises(ValueError, match=r"StateIndex\(init\) expected the initial"):
        nn.StateIndex(lambda: jnp.zeros(3))


def test_state_index_marker_is_identity_hashed():
    i1, i2 = nn.StateIndex(jnp.zeros(2)), nn.StateIndex(jnp.zeros(2))
    assert i1.marker != i2.marker
    assert jtu.tree_structure(i1) != jtu.tree_structure(i2)
    assert jtu.tree_structure(i1) == jtu.tree_structure(i1)


def test_state_collects_and_gets():
    layer = Counter(3.0)
    state = nn.State(layer)
    assert float(state.get(layer.index)) == 3.0
    assert isinstance(state.get(layer.index), jax.Array)
    assert len(jtu.tree_leaves(state)) == 1


def test_set_returns_new_and_invalidates_old():
    layer = Counter()
    state = nn.State(layer)
    new = state.set(layer.index, jnp.array(5.0))
    assert float(new.get(layer.index)) == 5.0
    with pytest.raises(ValueError, match="this State is out of date"):
        state.get(layer.index)
    with pytest.raises(ValueError, match="out of date"):
        state.set(layer.index, jnp.array(1.0))
    with pytest.raises(ValueError, match="out of date"):
        jtu.tree_leaves(state)
    assert repr(state) == "State(~old~)"


def test_clone_allows_reuse():
    layer = Counter()
    state = nn.State(layer)
    clone = jtu.tree_map(lambda x: x, state)
    _, _ = layer(jnp.array(1.0), state)
    out, _ = layer(jnp.array(1.0), clone)
    assert float(out) == 1.0


@pytest.mark.parametrize(
    "value",
    [jnp.zeros(3), jnp.array(1, dtype=jnp.int32), (jnp.array(1.0), jnp.array(2.0))],
)
def test_set_checks_structure_shape_dtype(value):
    layer = Counter()
    state = nn.State(layer)
    with pytest.raises(ValueError, match=r"same pytree structure, shapes and dtypes"):
        state.set(layer.index, value)
    # a failed set does not invalidate the state
    assert float(state.get(layer.index)) == 0.0


def test_get_rejects_non_index():
    state = nn.State(Counter())
    with pytest.raises(TypeError, match="expected an `ecliptic.nn.StateIndex`"):
        state.get("index")
    with pytest.raises(TypeError, match="expected an `ecliptic.nn.StateIndex`"):
        state.set(3, jnp.zeros(()))


def test_get_unknown_index():
    state = nn.State(Counter())
    other = Counter()
    with pytest.raises(ValueError, match="that it does not hold"):
        state.get(other.index)
    with pytest.raises(ValueError, match="that it does not hold"):
        state.set(other.index, jnp.array(0.0))
    with pytest.raises(ValueError, match="that it does not hold"):
        state.substate(other)


def test_substate_and_update():
    model = Pair(Counter(1.0), Counter(2.0))
    state = nn.State(model)
    sub = state.substate(model.a)
    assert len(jtu.tree_leaves(sub)) == 1
    _, sub = model.a(jnp.array(0.0), sub)
    new = state.update(sub)
    assert float(new.get(model.a.index)) == 2.0
    assert float(new.get(model.b.index)) == 2.0
    with pytest.raises(ValueError, match="out of date"):
        state.get(model.a.index)


def test_update_errors():
    model = Pair(Counter(1.0), Counter(2.0))
    state = nn.State(model)
    other = nn.State(Counter())
    with pytest.raises(ValueError, match=r"subset of this State's 2 keys"):
        state.update(other)
    with pytest.raises(TypeError, match="update expected an `ecliptic.nn.State`"):
        state.update({"a": 1})


def test_make_with_state_deletes_init_and_is_stable():
    model, state = nn.make_with_state(Pair)(Counter(1.0), Counter(2.0))
    assert jtu.tree_leaves(model) == []
    assert float(state.get(model.b.index)) == 2.0
    model2, state2 = nn.make_with_state(Pair)(Counter(1.0), Counter(2.0))
    assert jtu.tree_structure(state) == jtu.tree_structure(state2)
    assert model.a.index.marker == "Pair.a.index"
    with pytest.raises(ValueError, match="initial states were already deleted"):
        nn.State(model)


def test_delete_init_state():
    layer = Counter(4.0)
    deleted = nn.delete_init_state(layer)
    assert jtu.tree_leaves(deleted) == []
    assert deleted.index.marker is layer.index.marker
    assert len(jtu.tree_leaves(layer)) == 1  # original untouched
    # deleting twice is harmless
    assert jtu.tree_leaves(nn.delete_init_state(deleted)) == []


def test_state_under_jit_and_vmap():
    model, state = nn.make_with_state(Counter)(0.0)

    @jax.jit
    def step(x, state):
        return jax.vmap(model, in_axes=(0, None), out_axes=(0, None))(x, state)

    x = jnp.arange(3.0)
    out, state = step(x, state)
    out, state = step(x, state)
    np.testing.assert_allclose(out, x + 1)
    assert float(state.get(model.index)) == 2.0


def test_init_under_vmap():
    def make(v):
        return nn.make_with_state(Counter)(v)

    model, state = jax.vmap(make)(jnp.arange(3.0))
    np.testing.assert_allclose(state.get(model.index), jnp.arange(3.0))


def test_repr_and_stateful_default():
    model, state = nn.make_with_state(Counter)(1.0)
    assert "State(" in repr(state)
    assert "Counter.index" in repr(state)
    assert model.is_stateful() is True


def test_repr_with_identity_markers():
    # (Equinox 0.13.8 raises a TypeError here: its markers are not strings.)
    state = nn.State(Pair(Counter(1.0), Counter(2.0)))
    text = repr(state)
    assert "<StateIndex 0>" in text and "<StateIndex 1>" in text


def test_ensemble_of_stateful_models():
    import jax.random as jr

    import ecliptic

    def make(key):
        return nn.make_with_state(nn.Sequential)(
            [nn.Linear(2, 3, key=key), nn.BatchNorm(3, "b", mode="batch")]
        )

    models, states = ecliptic.filter_vmap(make)(jr.split(jr.PRNGKey(0), 4))
    x = jr.normal(jr.PRNGKey(1), (4, 5, 2))

    def run(model, state, x):
        f = jax.vmap(model, axis_name="b", in_axes=(0, None), out_axes=(0, None))
        return f(x, state)

    out, states = ecliptic.filter_vmap(run)(models, states, x)
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(states.get(models[1].batch_counter), [1, 1, 1, 1])
    np.testing.assert_allclose(out.mean(axis=1), np.zeros((4, 3)), atol=1e-5)
