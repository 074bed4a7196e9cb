"""The garbage collector and large calls.

A call served by a guard whose arguments hold at least `GC_PAUSE_MIN_ARRAYS` arrays
runs with the collector paused, from the compiled call to the end of rebuilding its
output; the collector resumes afterwards, also when the call raises, and a collector
the user paused stays paused. A smaller call runs with the collector as it is.
Observed with `gc.callbacks` (which collections start while the call runs), with a
low threshold so that a few dozen new objects wake one; no timing.
"""

import contextlib
import gc

import jax
import jax.numpy as jnp
import pytest

import ecliptic
from ecliptic._dispatch import dispatch_info, GC_PAUSE_MIN_ARRAYS

from ..helpers import stack


def _shift(model, x):
    # A new model of the same structure: one output array per input array, and
    # one output Module per input Module.
    return jax.tree_util.tree_map(lambda a: a + jnp.sum(x), model)


@contextlib.contextmanager
def _collections_during():
    """`(during, starts)`: set `during[0]` around a call; `starts` lists whether each
    automatic collection that started was inside it."""
    during, starts = [False], []

    def callback(phase, info):
        if phase == "start":
            starts.append(during[0])

    threshold = gc.get_threshold()
    gc.set_threshold(25, *threshold[1:])
    gc.callbacks.append(callback)
    try:
        yield during, starts
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)


def _guarded_calls(jf, model, x, n: int = 3):
    """Calls `jf(model, x)` `n` times after warm-up, each from a fresh young
    generation, recording which collections start inside a call."""
    for _ in range(3):  # the ordinary path, then a guard
        jf(model, x)
    before = dispatch_info(jf).guard_calls
    with _collections_during() as (during, starts):
        for _ in range(n):
            gc.collect()
            during[0] = True
            out = jf(model, x)
            during[0] = False
    assert dispatch_info(jf).guard_calls == before + n
    return out, starts


def test_a_large_call_runs_with_the_collector_paused(getkey):
    model = stack(getkey, GC_PAUSE_MIN_ARRAYS // 2 + 1)
    out, starts = _guarded_calls(ecliptic.filter_jit(_shift), model, jnp.ones(3))
    assert True not in starts
    assert gc.isenabled()
    assert len(jax.tree_util.tree_leaves(out)) == len(jax.tree_util.tree_leaves(model))


def test_a_smaller_call_leaves_the_collector_alone(getkey):
    # The control: the same kind of call just below the bound wakes collections
    # while it runs (its 30-odd new arrays and Modules against a threshold of 25).
    model = stack(getkey, (GC_PAUSE_MIN_ARRAYS - 1) // 2)
    _, starts = _guarded_calls(ecliptic.filter_jit(_shift), model, jnp.ones(3))
    assert True in starts


def test_the_collector_resumes_when_a_large_call_raises(getkey):
    model = stack(getkey, GC_PAUSE_MIN_ARRAYS // 2 + 1)

    @ecliptic.filter_jit
    def checked(model, x):
        return _shift(model, ecliptic.error_if(x, x < 0, "x must be non-negative"))

    x = jnp.ones(3)
    for _ in range(3):
        checked(model, x)
    before = dispatch_info(checked).guard_calls
    with pytest.raises(ecliptic.EquinoxRuntimeError, match="non-negative"):
        jax.block_until_ready(checked(model, -x))
    assert dispatch_info(checked).guard_calls == before + 1  # the guard served it
    assert gc.isenabled()
    checked(model, x)
    assert dispatch_info(checked).guard_calls == before + 2


def test_a_collector_the_user_paused_stays_paused(getkey):
    model = stack(getkey, GC_PAUSE_MIN_ARRAYS // 2 + 1)
    jf = ecliptic.filter_jit(_shift)
    x = jnp.ones(3)
    for _ in range(3):
        jf(model, x)
    gc.disable()
    try:
        jf(model, x)
        assert not gc.isenabled()
    finally:
        gc.enable()
