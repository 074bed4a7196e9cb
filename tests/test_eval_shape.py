import jax
import jax.numpy as jnp
import jax.random as jr

import ecliptic as eqx

from .helpers import Affine, make_affine


def test_eval_shape_of_model_constructor():
    like = eqx.filter_eval_shape(make_affine, jr.PRNGKey(0), 4, 5)
    assert isinstance(like, Affine)
    assert like.weight == jax.ShapeDtypeStruct((5, 4), jnp.float32)
    assert like.bias.shape == (5,) and like.activation is jnp.tanh and like.size == 5


def test_eval_shape_structs_in_and_non_arrays_through():
    def f(x, n, *, name):
        return {"y": jnp.zeros((n,)) + x.sum(), "name": name, "fn": jnp.sin}

    out = eqx.filter_eval_shape(
        f, jax.ShapeDtypeStruct((2, 3), jnp.float32), 4, name="a"
    )
    assert out["y"] == jax.ShapeDtypeStruct((4,), jnp.float32)
    assert out["name"] == "a" and out["fn"] is jnp.sin


def test_eval_shape_callable_module_arrays_are_abstract(getkey):
    model = make_affine(getkey())
    out = eqx.filter_eval_shape(model, jnp.ones(3))
    assert out == jax.ShapeDtypeStruct((2,), jnp.float32)
