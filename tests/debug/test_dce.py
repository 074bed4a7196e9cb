import jax
import jax.numpy as jnp
import pytest

from ecliptic.debug import inspect_dce, store_dce


def test_reports_dead_and_live_arrays(capsys):
    @jax.jit
    def f(x):
        a, _ = store_dce((x**2, x + 1), name="test_dce_pair")
        return a

    f(jnp.array(1))
    inspect_dce(name="test_dce_pair")
    out = capsys.readouterr().out
    assert "Found 1 call to `ecliptic.debug.store_dce`." in out
    assert "Entry 0:" in out
    assert "(i32[], <DCE'd>)" in out


def test_non_arrays_and_names(capsys):
    @jax.jit
    def f(x):
        d = store_dce({"x": x * 2, "tag": "t"}, name="test_dce_named")
        return d["x"]

    f(jnp.ones(3))
    f(jnp.ones(3))  # same compiled program: still one call site
    inspect_dce(name="test_dce_named")
    out = capsys.readouterr().out
    assert "Found 1 call to" in out
    assert "f32[3]" in out and "'t'" in out
    inspect_dce(name="test_dce_never_used")
    assert "Found 0 calls" in capsys.readouterr().out


def test_outside_or_inside_jit_errors():
    with pytest.raises(RuntimeError, match="store_dce must be called inside a jitted"):
        store_dce(jnp.ones(2))
    with pytest.raises(RuntimeError, match="inspect_dce must be called outside of JIT"):
        jax.jit(lambda x: (inspect_dce(), x)[1])(jnp.ones(2))
