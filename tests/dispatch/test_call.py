"""The call itself: a function without arrays, and the wrapper that `filter_jit`
returned for a function with arrays (`filter_jit(model)`), are called through their
dispatcher's generated `fast` (no `__call__` of ecliptic's runs first); any other
instance of a wrapper with arrays (a copy, or one a transformation rebuilt with other
arrays) through its own arrays. All must behave alike: the same outputs, the same
traces, the same hits, the same errors."""

import copy
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic
from ecliptic._dispatch import dispatch_info

from ..helpers import counted, Stack, stack


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


def test_copies_of_a_model_wrapper_call_with_their_own_arrays(getkey):
    model = stack(getkey, 2)
    bound = ecliptic.filter_jit(model)
    # Two structures: a JAX array, and a NumPy array (another leaf type).
    x, y = jnp.ones(3), np.full(3, 0.5, np.float32)
    doubled = jax.tree_util.tree_map(lambda a: 2 * a, bound)
    model2 = jax.tree_util.tree_map(lambda a: 2 * a, model)
    copies = [copy.copy(bound), copy.deepcopy(bound)]
    # Two structures in turn move the prediction on every call; the copies and the
    # rebuilt wrapper are called between the returned wrapper's calls.
    for _ in range(4):
        np.testing.assert_allclose(bound(x), model(x), rtol=1e-6)
        np.testing.assert_allclose(doubled(x), model2(x), rtol=1e-6)
        np.testing.assert_allclose(bound(y), model(y), rtol=1e-6)
        for other in copies:
            np.testing.assert_allclose(other(y), model(y), rtol=1e-6)
            np.testing.assert_allclose(other(x), model(x), rtol=1e-6)
    info = dispatch_info(bound)
    assert info.guards == 2 and info.ordinary_calls == 4
    ecliptic.clear_caches()
    for f, m in [(bound, model), (doubled, model2), (copies[1], model)]:
        np.testing.assert_allclose(f(x), m(x), rtol=1e-6)


def test_a_model_wrapper_passed_through_a_transformation_uses_the_traced_arrays(
    getkey,
):
    model = stack(getkey, 2)
    bound = ecliptic.filter_jit(model)
    x = jnp.ones(3)
    for _ in range(3):
        bound(x)
    grads = ecliptic.filter_grad(lambda f: jnp.sum(f(x)))(bound)
    expected = ecliptic.filter_grad(lambda m: jnp.sum(m(x)))(model)
    got = jax.tree_util.tree_leaves(grads)
    assert len(got) == len(jax.tree_util.tree_leaves(expected))
    for a, b in zip(got, jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _frames_per_call(call, n: int = 4) -> list[str]:
    """The names of the Python functions of ecliptic's that `n` calls of `call` ran."""
    root = os.path.dirname(ecliptic.__file__)
    names: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            names.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        for _ in range(n):
            call()
    finally:
        sys.setprofile(None)
    return names


def test_a_guarded_call_runs_one_frame_of_ecliptic(getkey):
    # Layers in a tuple: a list would be checked against its snapshot (`fresh`).
    model = Stack(tuple(stack(getkey, 2).layers))
    plain = ecliptic.filter_jit(lambda m, x: m(x))
    bound = ecliptic.filter_jit(model)
    x, y = jnp.ones(3), np.ones(3, np.float32)
    for _ in range(3):
        plain(model, x), bound(x)
    assert _frames_per_call(lambda: plain(model, x)) == ["fast"] * 4
    assert _frames_per_call(lambda: bound(x)) == ["fast"] * 4
    # Two structures in turn: one frame more (the prediction moves on).
    for _ in range(3):
        bound(x), bound(y)
    assert _frames_per_call(lambda: (bound(x), bound(y)), 2) == ["fast", "advance"] * 4
    # A copy (not the wrapper `filter_jit` returned) runs its own arrays' call.
    other = copy.copy(bound)
    assert _frames_per_call(lambda: other(x), 1)[:2] == ["_call_unadopted", "run"]
