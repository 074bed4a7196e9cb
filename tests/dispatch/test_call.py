"""The call itself: a function without arrays is called through its dispatcher's
generated `fast` (no `__call__` of ecliptic's runs first), a function with arrays
(`filter_jit(model)`) through its wrapper's `__call__`. Both must behave alike: the
same outputs, the same traces, the same hits, the same errors."""

import copy

import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic
from ecliptic._dispatch import dispatch_info

from ..helpers import counted, stack


def _scale(x, factor=2.0):
    return x * factor


def test_a_plain_function_and_a_model_are_both_served_by_guards(getkey):
    model = stack(getkey, 2)
    plain = ecliptic.filter_jit(lambda m, x: m(x))
    bound = ecliptic.filter_jit(model)
    x = jnp.ones(3)
    for _ in range(3):
        plain(model, x)
        bound(x)
    warm_plain, warm_bound = dispatch_info(plain), dispatch_info(bound)
    for _ in range(5):
        np.testing.assert_allclose(plain(model, x), model(x), rtol=1e-6)
        np.testing.assert_allclose(bound(x), model(x), rtol=1e-6)
    assert dispatch_info(plain).ordinary_calls == warm_plain.ordinary_calls
    assert dispatch_info(bound).ordinary_calls == warm_bound.ordinary_calls
    assert dispatch_info(plain).guard_calls == warm_plain.guard_calls + 5
    assert dispatch_info(bound).guard_calls == warm_bound.guard_calls + 5


def test_keyword_calls_and_new_structures_between_guarded_calls(getkey):
    f = counted(_scale)
    jf = ecliptic.filter_jit(f)
    x, y = jnp.ones(3), jnp.ones((2, 2))
    for _ in range(3):
        np.testing.assert_allclose(jf(x), 2 * x)
    # A keyword call, a new shape, then the first structure again: each correct,
    # and the first structure is still served by its guard.
    np.testing.assert_allclose(jf(x, factor=3.0), 3 * x)
    np.testing.assert_allclose(jf(y), 2 * y)
    before = dispatch_info(jf)
    np.testing.assert_allclose(jf(x), 2 * x)
    assert dispatch_info(jf).guard_calls == before.guard_calls + 1
    assert len(f.traces) == 3  # (x), (x, factor=3.0), (y)


def test_an_error_on_the_slow_path_leaves_the_fast_path_working():
    def f(x):
        if x.shape == (2,):
            raise ValueError("two is not allowed")
        return x + 1

    jf = ecliptic.filter_jit(f)
    x = jnp.ones(3)
    for _ in range(3):
        jf(x)
    with pytest.raises(ValueError, match="two is not allowed"):
        jf(jnp.ones(2))
    before = dispatch_info(jf)
    np.testing.assert_allclose(jf(x), x + 1)
    assert dispatch_info(jf).guard_calls == before.guard_calls + 1


def test_clear_caches_sends_calls_back_to_the_ordinary_path():
    jf = ecliptic.filter_jit(_scale)
    x = jnp.ones(3)
    for _ in range(3):
        jf(x)
    ecliptic.clear_caches()
    assert dispatch_info(jf).guards == 0
    before = dispatch_info(jf)
    np.testing.assert_allclose(jf(x), 2 * x)
    assert dispatch_info(jf).ordinary_calls == before.ordinary_calls + 1


def test_wrappers_print_alike_and_survive_copy(getkey):
    plain = ecliptic.filter_jit(_scale)
    bound = ecliptic.filter_jit(stack(getkey, 2))
    assert repr(plain).startswith("_JitWrapper(") and repr(bound).startswith(
        "_JitWrapper("
    )
    x = jnp.ones(3)
    for _ in range(3):
        plain(x)
    for other in (copy.copy(plain), copy.deepcopy(plain)):
        np.testing.assert_allclose(other(x), 2 * x)
        np.testing.assert_allclose(other(x, factor=4.0), 4 * x)
    assert callable(plain) and callable(bound)
