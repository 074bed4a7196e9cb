import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import pytest

from ecliptic import filter_jit
from ecliptic.debug import assert_max_traces, get_num_traces, TooManyTracesError


def test_counts_traces_under_filter_jit():
    @filter_jit
    @assert_max_traces(max_traces=2)
    def f(x, n):
        return x * n

    f(jnp.ones(2), 2)
    f(jnp.ones(2), 2)
    assert get_num_traces(f) == 1
    f(jnp.ones(2), 3)
    assert get_num_traces(f) == 2
    with pytest.raises(RuntimeError, match=r"at most 2 times.*'n'.*\n  4\n"):
        f(jnp.ones(2), 4)


def test_error_names_the_changed_array_argument():
    f = jax.jit(assert_max_traces(lambda x, y: (x, y), max_traces=1))
    f(jnp.ones(2), jnp.ones(2))
    msg = r"argument 'y'.*\n  float32\[3\]\nand previously was\n  float32\[2\]"
    with pytest.raises(RuntimeError, match=msg):
        f(jnp.ones(2), jnp.ones(3))


def test_unattributable_retrace():
    g = assert_max_traces(lambda x: x, max_traces=1)
    g(jnp.ones(2))  # called outside jit: every call counts
    with pytest.raises(RuntimeError, match="No single argument changed"):
        g(jnp.ones(2))


def test_unlimited_and_copies_share_a_counter():
    g = assert_max_traces(lambda x: x + 1, max_traces=None)
    copy = jtu.tree_unflatten(*reversed(jtu.tree_flatten(g)))
    for n in range(1, 4):
        jax.jit(copy)(jnp.ones(n))
    assert get_num_traces(g) == 3


def test_bad_arguments():
    with pytest.raises(
        TypeError, match="`max_traces` to be an int or None, but got str"
    ):
        assert_max_traces(lambda x: x, max_traces="1")
    with pytest.raises(
        ValueError, match="wrapped with `ecliptic.debug.assert_max_traces`"
    ):
        get_num_traces(lambda x: x)


def test_error_attributes_name_function_limit_count_and_argument():
    @filter_jit
    @assert_max_traces(max_traces=2)
    def scale(x, n):
        return x * n

    scale(jnp.ones(2), 2)
    scale(jnp.ones(2), 3)
    with pytest.raises(TooManyTracesError) as info:
        scale(jnp.ones(2), 4)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert (err.function_name, err.max_traces, err.count) == ("scale", 2, 3)
    assert err.argument == "n"


def test_error_attributes_when_no_argument_changed():
    g = assert_max_traces(lambda x: x, max_traces=1)
    g(jnp.ones(2))
    with pytest.raises(TooManyTracesError) as info:
        g(jnp.ones(2))
    err = info.value
    assert (err.function_name, err.count, err.argument) == ("<lambda>", 2, None)


def test_error_attributes_survive_pickling():
    import pickle

    f = jax.jit(assert_max_traces(lambda x, y: x, max_traces=1))
    f(jnp.ones(2), jnp.ones(2))
    with pytest.raises(TooManyTracesError) as info:
        f(jnp.ones(2), jnp.ones(3))
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is TooManyTracesError and again.argument == "y"
    assert (again.max_traces, again.count) == (1, 2)
