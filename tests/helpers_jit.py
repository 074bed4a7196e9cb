"""Helpers shared by the `filter_jit` tests (`test_jit.py`, `test_flat_cache.py`,
`test_guard.py`)."""

from __future__ import annotations

import functools as ft

import jax

from ecliptic._module import field, Module


def counted(fn):
    """Wraps `fn` so that every trace (every call of the wrapper) appends to
    `wrapper.traces`."""
    traces = []

    @ft.wraps(fn)
    def wrapper(*args, **kwargs):
        traces.append(None)
        return fn(*args, **kwargs)

    wrapper.traces = traces
    return wrapper


class Linear(Module):
    """`weight @ x + bias`, with a static name."""

    weight: jax.Array
    bias: jax.Array
    name: str = field(static=True, default="lin")

    def __call__(self, x):
        return self.weight @ x + self.bias

    def scaled(self, x, k):
        return k * (self.weight @ x)


def linear(getkey, n: int = 3) -> Linear:
    """A random `Linear(n, n)`."""
    return Linear(
        jax.random.normal(getkey(), (n, n)), jax.random.normal(getkey(), (n,))
    )
