import logging
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic
from ecliptic import (
    branched_error_if,
    EquinoxRuntimeError,
    EquinoxTracetimeError,
    error_if,
    filter_jit,
)


JaxRuntimeError = jax.errors.JaxRuntimeError


def _raises_with(msg, fn, *args):
    """Runs `fn(*args)` and blocks on the result: the failure must surface (at
    dispatch or, at the latest, on blocking) carrying `msg`. Returns the error."""
    with pytest.raises((EquinoxRuntimeError, JaxRuntimeError, ValueError)) as info:
        jax.block_until_ready(fn(*args))
    assert msg in str(info.value)
    return info.value


def test_error_classes_are_public():
    assert ecliptic.EquinoxRuntimeError is EquinoxRuntimeError
    assert EquinoxRuntimeError.__module__ == "ecliptic"
    assert EquinoxTracetimeError.__module__ == "ecliptic"
    assert issubclass(EquinoxRuntimeError, RuntimeError)


def test_filter_jit_raises_runtime_error_with_message():
    @filter_jit
    def f(x):
        return error_if(x, x < 0, "x must be non-negative") * 2

    np.testing.assert_allclose(f(jnp.arange(3.0)), [0.0, 2.0, 4.0])
    err = _raises_with("x must be non-negative", f, jnp.array([1.0, -1.0]))
    assert isinstance(err, EquinoxRuntimeError)
    assert "test_errors.py" in str(err)  # the error_if call site is named


def test_eager_call_raises_runtime_error():
    with pytest.raises(EquinoxRuntimeError, match="boom"):
        jax.block_until_ready(error_if(jnp.array(1.0), jnp.array(True), "boom"))
    out = error_if(jnp.array(1.0), jnp.array(False), "boom")
    assert float(out) == 1.0


def test_static_predicate():
    x = jnp.ones(2)
    with pytest.raises(EquinoxTracetimeError, match="known at trace time"):
        error_if(x, True, "known at trace time")
    assert error_if(x, False, "never") is not None

    @filter_jit
    def f(x, flag):
        return error_if(x, flag, "static flag set")

    with pytest.raises(EquinoxTracetimeError, match="static flag set"):
        f(x, True)
    np.testing.assert_allclose(f(x, False), x)


def test_plain_jax_jit_error_carries_message():
    @jax.jit
    def f(x):
        return error_if(x, x.sum() > 10, "sum too large") + 1

    err = _raises_with("sum too large", f, jnp.full(3, 5.0))
    assert not isinstance(err, EquinoxRuntimeError)  # JAX's own error class


def test_error_used_later_surfaces_by_block_at_the_latest():
    check = filter_jit(lambda x: error_if(x, x > 1, "late check"))
    follow = filter_jit(lambda y: y * 3)
    try:
        y = check(jnp.array(5.0))
        jax.block_until_ready(follow(y))
    except (EquinoxRuntimeError, JaxRuntimeError, ValueError) as e:
        assert "late check" in str(e)
    else:
        pytest.fail("the failed check never surfaced")


def test_unused_result_is_not_checked():
    @filter_jit
    def f(x):
        error_if(x, x > 0, "dead code")  # result dropped: the check is removed
        return x + 1

    np.testing.assert_allclose(f(jnp.ones(2)), [2.0, 2.0])


def test_pytree_with_non_arrays():
    tree = {"a": jnp.ones(2), "name": "x", "n": 3}
    out = filter_jit(lambda t: error_if(t, t["a"] < 0, "neg"))(tree)
    assert out["name"] == "x" and out["n"] == 3
    np.testing.assert_allclose(out["a"], tree["a"])


def test_vmap_raises_if_any_element_true():
    f = filter_jit(jax.vmap(lambda x: error_if(x, x < 0, "some element negative")))
    np.testing.assert_allclose(f(jnp.arange(4.0)), jnp.arange(4.0))
    _raises_with("some element negative", f, jnp.array([1.0, -1.0, 2.0]))


def test_grad_passes_through():
    def loss(x):
        return (error_if(x, x.sum() > 100, "big") ** 2).sum()

    g = jax.jit(jax.grad(loss))(jnp.arange(3.0))
    np.testing.assert_allclose(g, 2 * jnp.arange(3.0))
    _raises_with("big", jax.jit(jax.grad(loss)), jnp.full(3, 50.0))


def test_branched_error_if_chooses_message():
    msgs = ["first", "second", "third"]
    f = filter_jit(lambda x, i: branched_error_if(x, x > 0, i, msgs))
    _raises_with("second", f, jnp.array(1.0), jnp.array(1))
    _raises_with("third", f, jnp.array(1.0), jnp.array(2))
    np.testing.assert_allclose(f(jnp.array(-1.0), jnp.array(2)), -1.0)
    batched = filter_jit(jax.vmap(lambda x, i: branched_error_if(x, x > 0, i, msgs)))
    err = _raises_with("third", batched, jnp.array([1.0, -1.0]), jnp.array([0, 2]))
    assert "first" not in str(err).split("\n")[0]


def test_on_error_nan_and_off():
    x = jnp.array([1.0, 2.0])
    nan = filter_jit(lambda x: error_if(x, x > 1, "m", on_error="nan"))(x)
    assert bool(jnp.isnan(nan).all())
    ints = filter_jit(lambda x: error_if(x, x > 1, "m", on_error="nan"))(
        jnp.array([1, 2])
    )
    assert ints.tolist() == [np.iinfo(np.int32).max] * 2
    off = filter_jit(lambda x: error_if(x, x > 1, "m", on_error="off"))(x)
    np.testing.assert_allclose(off, x)
    with pytest.warns(UserWarning, match="NaNs replace the value"):
        static = error_if(x, True, "m", on_error="nan")
    assert bool(jnp.isnan(static).all())


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one array.*got a PyTree"):
        error_if((1, "a"), jnp.array(True), "m")
    with pytest.raises(TypeError, match="message to be a str, but got int 3"):
        error_if(jnp.ones(1), jnp.array(True), 3)
    with pytest.raises(ValueError, match="`on_error`.*got 'loud'"):
        error_if(jnp.ones(1), jnp.array(True), "m", on_error="loud")


def test_callback_failure_is_not_logged(caplog):
    f = filter_jit(lambda x: error_if(x, x > 0, "quiet please"))
    with caplog.at_level(logging.ERROR, logger="jax._src.callback"):
        with pytest.raises((EquinoxRuntimeError, JaxRuntimeError, ValueError)):
            jax.block_until_ready(f(jnp.array(1.0)))
    assert not [r for r in caplog.records if "quiet please" in str(r.exc_info)]


_SCRIPT = textwrap.dedent(
    """
    import jax.numpy as jnp, ecliptic
    f = ecliptic.filter_jit(lambda x: ecliptic.error_if(x, x > 0, "env msg"))
    print("RESULT", f(jnp.array([1.0, -1.0])).tolist())
    """
)


def _run(env_extra, stdin=""):
    env = {k: v for k, v in os.environ.items() if "ON_ERROR" not in k}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_modes():
    # Both names are read (Equinox's and ecliptic's); each mode under one of them
    # (a subprocess each: the mode is read at import).
    nan = _run({"EQX_ON_ERROR": "nan"})
    assert "RESULT [nan, nan]" in nan.stdout, nan.stderr
    off = _run({"ECLIPTIC_ON_ERROR": "off"})
    assert "RESULT [1.0, -1.0]" in off.stdout, off.stderr
    raised = _run({"ECLIPTIC_ON_ERROR": "raise", "EQX_ON_ERROR": "nan"})
    assert raised.returncode != 0 and "EquinoxRuntimeError" in raised.stderr
    assert "env msg" in raised.stderr


def test_env_mode_invalid_and_breakpoint():
    bad = _run({"ECLIPTIC_ON_ERROR": "loud"})
    assert bad.returncode != 0
    assert "ECLIPTIC_ON_ERROR must be one of" in bad.stderr
    assert "got 'loud'" in bad.stderr
    bp = _run({"EQX_ON_ERROR": "breakpoint"}, stdin="c\n" * 3)
    assert "=breakpoint is set" in bp.stderr
    assert "ecliptic.EquinoxRuntimeError: env msg" in bp.stdout
    assert "(jdb)" in bp.stdout  # the debugger opened; continuing returns NaNs
    assert "RESULT [nan, nan]" in bp.stdout


def test_compiled_function_raises_runtime_error():
    f = filter_jit(lambda x: error_if(x, x > 0, "compiled check"))
    compiled = f.lower(jnp.array(1.0)).compile()
    np.testing.assert_allclose(compiled(jnp.array(-1.0)), -1.0)
    err = _raises_with("compiled check", compiled, jnp.array(1.0))
    assert isinstance(err, EquinoxRuntimeError)


# -- PyTrees without arrays ----------------------------------------------------------


@pytest.mark.parametrize("x", [1.5, "config", None, (3, "a")])
def test_no_array_static_false_returns_x(x):
    assert error_if(x, False, "never") == x
    assert branched_error_if(x, False, 1, ["a", "b"]) == x
    f = filter_jit(lambda x, flag: error_if(x, flag, "never"))
    assert f(x, False) == x


@pytest.mark.parametrize("x", [1.5, "config", None])
def test_no_array_static_true_raises_at_trace_time(x):
    with pytest.raises(EquinoxTracetimeError, match="static failure"):
        error_if(x, True, "static failure")
    with pytest.raises(EquinoxTracetimeError, match="second"):
        branched_error_if(x, True, 1, ["first", "second"])
    f = filter_jit(lambda x, flag: error_if(x, flag, "static in jit"))
    with pytest.raises(EquinoxTracetimeError, match="static in jit"):
        f(x, True)


def test_no_array_deferred_check_is_an_error():
    # A predicate known only at run time needs an array to carry the check.
    f = filter_jit(lambda flag, x: error_if(x, flag, "deferred"))
    with pytest.raises(ValueError, match="at least one array.*only known at run"):
        f(jnp.array(False), 2.0)


# -- where the failed check was made ---------------------------------------------------


def _user_check(x):
    return error_if(x, x > 0, "positive value")  # the failing check


def _user_middle(x):
    return _user_check(x) * 2


def _user_other_caller(x):
    return _user_check(x) - 1


def _check_line() -> int:
    return _user_check.__code__.co_firstlineno + 1


def test_runtime_error_shows_the_user_stack_at_trace_time():
    @filter_jit
    def user_step(x):
        return _user_middle(x) + 1

    with pytest.raises(EquinoxRuntimeError) as info:
        jax.block_until_ready(user_step(jnp.array(1.0)))
    text = str(info.value)
    assert text.startswith("positive value")
    here = os.path.abspath(__file__)
    assert f'"{here}", line {_check_line()}, in _user_check' in text
    assert "error_if(x, x > 0" in text  # the source line of the check
    # Its callers inside the jitted function, outermost first.
    names = ["in user_step", "in _user_middle", "in _user_check"]
    positions = [text.index(n) for n in names]
    assert positions == sorted(positions)
    # Frames outside the jitted function (this test) and ecliptic's are not shown.
    assert "test_runtime_error_shows_the_user_stack" not in text
    assert f"{os.sep}ecliptic{os.sep}_" not in text


def test_runtime_error_stack_names_the_caller_of_each_check():
    # The same check reached from two callers: each failure names its own caller.
    first = filter_jit(_user_middle)
    second = filter_jit(_user_other_caller)
    with pytest.raises(EquinoxRuntimeError) as one:
        jax.block_until_ready(first(jnp.array(1.0)))
    with pytest.raises(EquinoxRuntimeError) as two:
        jax.block_until_ready(second(jnp.array(1.0)))
    assert "in _user_middle" in str(one.value)
    assert "in _user_other_caller" not in str(one.value)
    assert "in _user_other_caller" in str(two.value)
    assert "in _user_middle" not in str(two.value)


def test_eager_runtime_error_shows_the_call_site():
    with pytest.raises(EquinoxRuntimeError) as info:
        jax.block_until_ready(_user_check(jnp.array(1.0)))
    assert f"line {_check_line()}, in _user_check" in str(info.value)
    # Eagerly the check runs where it is called: the callers are in the traceback.
    assert "in test_eager_runtime_error_shows_the_call_site" not in str(info.value)
