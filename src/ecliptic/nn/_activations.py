"""`PReLU`: a leaky ReLU with a learnt slope."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._module import Module


class PReLU(Module):
    """PReLU activation: `x -> x if x >= 0 else negative_slope * x`, elementwise.

    A leaky ReLU whose leak `negative_slope` is a parameter.
    """

    negative_slope: Array

    def __init__(self, init_alpha: ArrayLike | None = 0.25):
        """**Arguments:**

        - `init_alpha`: the initial slope for negative inputs: a number (default
            `0.25`), or an array broadcastable to the input (one slope per channel,
            for example shape `(channels, 1, 1)`).
        """
        self.negative_slope = jnp.asarray(init_alpha)

    @jax.named_scope("ecliptic.nn.PReLU")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: an array of any shape.
        - `key`: ignored; accepted so that `PReLU` works inside `Sequential`.
            (Keyword only.)

        **Returns:** an array of the shape of `x` (broadcast with
        `negative_slope`).
        """
        del key
        with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
            return jnp.where(x >= 0, x, self.negative_slope * x)
