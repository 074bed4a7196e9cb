"""The transformations' shared kit (`ecliptic._wrap`), through the public
transformations that use it."""

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic as eqx


class _Unhashable:
    __hash__ = None  # pyright: ignore[reportAssignmentType]

    def __eq__(self, other):
        return isinstance(other, _Unhashable)


# -- method wrapper -----------------------------------------------------------------


class _Scaled(eqx.Module):
    scale: jax.Array

    @eqx.filter_grad
    def grad(self, x):
        return jnp.sum(self.scale * x**2)

    @eqx.filter_vmap(in_axes=(None, 0))
    def batched(self, x):
        return self.scale * x

    @eqx.filter_checkpoint
    def remat(self, x):
        return self.scale * x

    @eqx.filter_pmap(in_axes=(None, 0))
    def parallel(self, x):
        return self.scale * x


def test_transformed_methods_bind_to_the_instance():
    m = _Scaled(jnp.array(3.0))
    grads = m.grad(jnp.array(1.0))  # differentiates `self`
    assert isinstance(grads, _Scaled)
    np.testing.assert_allclose(grads.scale, 1.0)
    np.testing.assert_allclose(m.batched(jnp.arange(3.0)), [0.0, 3.0, 6.0])
    np.testing.assert_allclose(m.remat(jnp.array(2.0)), 6.0)
    np.testing.assert_allclose(m.parallel(jnp.ones((1, 2))), [[3.0, 3.0]])


def test_transformed_method_read_from_the_class_is_the_wrapper():
    assert isinstance(_Scaled.batched, eqx.Module)
    assert _Scaled.batched.__name__ == "batched"
    np.testing.assert_allclose(
        _Scaled.batched(_Scaled(jnp.array(2.0)), jnp.ones(2)), [2.0, 2.0]
    )


# -- removed keyword arguments ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "where", "name", "fix"),
    [
        (eqx.filter_grad, "ecliptic.filter_grad", "arg", "ecliptic.partition"),
        (
            eqx.filter_value_and_grad,
            "ecliptic.filter_value_and_grad",
            "filter_spec",
            "ecliptic.partition",
        ),
        (eqx.filter_vmap, "ecliptic.filter_vmap", "fn", "in_axes="),
        (eqx.filter_vmap, "ecliptic.filter_vmap", "out", "in_axes="),
        (eqx.filter_pmap, "ecliptic.filter_pmap", "default", "in_axes="),
        (eqx.filter_pmap, "ecliptic.filter_pmap", "kwargs", "in_axes="),
    ],
)
def test_removed_keyword_arguments(make, where, name, fix):
    with pytest.raises(ValueError) as info:
        make(lambda x: x, **{name: None})
    message = str(info.value)
    assert message.startswith(f"{where} no longer accepts `{name}=`")
    assert "which was removed in Equinox 0.10" in message
    assert fix in message


# -- hashable static leaves ---------------------------------------------------------


def test_pmap_unhashable_static_argument_names_its_path():
    f = eqx.filter_pmap(lambda x, y: x)
    with pytest.raises(ValueError) as info:
        f(jnp.ones((1, 2)), {"a": [1, _Unhashable()]})
    message = str(info.value)
    assert message.startswith("Non-hashable static arguments are not supported.")
    assert "ecliptic.filter_pmap treats every non-array leaf as static" in message
    assert "`args[1]['a'][1]` is an unhashable _Unhashable" in message


def test_pmap_unhashable_static_leaf_of_the_function_names_its_path():
    fun = eqx.Partial(lambda u, x: x, _Unhashable())
    with pytest.raises(ValueError, match=r"`fun\.args\[0\]` is an unhashable"):
        eqx.filter_pmap(fun)(jnp.ones((1, 2)))


# -- Lowered / Compiled -------------------------------------------------------------


def test_pmap_lower_compile_and_names():
    def my_parallel_function(x, tag):
        return x * 2, tag

    lowered = eqx.filter_pmap(my_parallel_function).lower(jnp.ones((1, 3)), "t")
    assert "stablehlo" in lowered.as_text()
    assert lowered.lowered.as_text() == lowered.as_text()  # JAX's own stage
    compiled = lowered.compile()
    assert isinstance(compiled.as_text(), str)
    out, tag = compiled(jnp.arange(3.0)[None], "t")
    np.testing.assert_allclose(out, [[0.0, 2.0, 4.0]])
    assert tag == "t"


@pytest.mark.parametrize(
    "make", [eqx.filter_jit, eqx.filter_pmap], ids=["filter_jit", "filter_pmap"]
)
def test_compile_passes_compiler_options_to_xla(make):
    def double(x):
        return x * 2

    x = jnp.arange(3.0)[None]
    lowered = make(double).lower(x)
    # An option XLA does not know reaches XLA, which rejects it by name ...
    with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option_4c1"):
        lowered.compile(compiler_options={"xla_no_such_option_4c1": True})
    # ... and a valid one compiles a program that runs.
    compiled = lowered.compile(compiler_options={"xla_embed_ir_in_executable": True})
    np.testing.assert_allclose(compiled(x), 2 * x)
    np.testing.assert_allclose(lowered.compile()(x), 2 * x)


# -- static values carried through JAX ----------------------------------------------


def test_unhashable_static_values_pass_through_transformations():
    u, x = _Unhashable(), jnp.ones(2)
    out, static = eqx.filter_checkpoint(lambda x, u: (x * 2, u))(x, u)
    assert static is u
    assert eqx.filter_vmap(lambda x: (x, u))(jnp.ones((3, 2)))[1] is u
    assert eqx.filter_eval_shape(lambda x: (x, u), x)[1] is u
    assert eqx.filter_jvp(lambda x: (x, u), (x,), (x,))[0][1] is u

    @eqx.filter_custom_jvp
    def double(x, u):
        return 2 * x

    @double.def_jvp
    def _(primals, tangents):
        return double(*primals), 2 * tangents[0]

    np.testing.assert_allclose(jax.jvp(lambda x: double(x, u), (x,), (x,))[1], 2 * x)


def test_filter_vjp_aux_arrays_are_values_not_tracers():
    x = jnp.arange(2.0)
    out, vjp_fn, aux = eqx.filter_vjp(
        lambda x: (x * 2, (x * 3, "tag")), x, has_aux=True
    )
    arr, tag = aux
    assert not isinstance(arr, jax.core.Tracer)
    np.testing.assert_allclose(arr, [0.0, 3.0])
    assert tag == "tag"
    np.testing.assert_allclose(vjp_fn(jnp.ones(2))[0], [2.0, 2.0])
