"""Small models shared by the filtered-transformation tests."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr

from ecliptic._module import field, Module


class Affine(Module):
    """`y = activation(weight @ x + bias)`: arrays mixed with a function, an int and a
    static flag, like a real layer."""

    weight: jax.Array
    bias: jax.Array
    activation: Callable
    size: int
    use_bias: bool = field(static=True, default=True)

    def __call__(self, x):
        y = self.weight @ x
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)


def make_affine(key, n_in: int = 3, n_out: int = 2) -> Affine:
    wkey, bkey = jr.split(key)
    weight = jr.normal(wkey, (n_out, n_in))
    bias = jr.normal(bkey, (n_out,))
    return Affine(weight, bias, jnp.tanh, n_out)
