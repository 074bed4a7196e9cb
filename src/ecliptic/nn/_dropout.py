"""`Dropout`: zeroes random entries during training, identity at inference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._checks import warn_deprecated
from .._messages import dropout_key_error, dropout_probability_error
from .._module import Module


def _warn_deterministic() -> None:
    # Equinox warns with a `UserWarning` here; the same category keeps filters working.
    warn_deprecated(
        "ecliptic.nn.Dropout: `deterministic`",
        "`inference`",
        stacklevel=3,
        category=UserWarning,
        detail="It has the same meaning.",
    )


class Dropout(Module):
    """Applies dropout: each entry is zeroed with probability `p` and the others are
    scaled by `1 / (1 - p)`, so the expectation is unchanged.

    Dropout runs only in training; with `inference=True` it is the identity. Switch
    a whole model with [`ecliptic.nn.inference_mode`][].
    """

    # Leaves (not static) so that `tree_at` / `inference_mode` can change them.
    p: float
    inference: bool

    def __init__(
        self,
        p: float = 0.5,
        inference: bool = False,
        *,
        deterministic: bool | None = None,
    ):
        """**Arguments:**

        - `p`: the probability of zeroing each entry, in `[0, 1]`.
        - `inference`: if `True`, the layer is the identity. Can be overridden per
            call.
        - `deterministic`: deprecated alias of `inference`.
        """
        if deterministic is not None:
            _warn_deterministic()
            inference = deterministic
        if isinstance(p, (int, float)) and not 0 <= p <= 1:
            raise dropout_probability_error(p)
        self.p = p
        self.inference = inference

    @property
    def deterministic(self) -> bool:
        """Deprecated alias of `inference`."""
        return self.inference

    @jax.named_scope("ecliptic.nn.Dropout")
    def __call__(
        self,
        x: Array,
        *,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
        deterministic: bool | None = None,
    ) -> Array:
        """**Arguments:**

        - `x`: an array of any shape.
        - `key`: a `jax.random.PRNGKey` choosing which entries to drop; required
            unless the layer is in inference mode or `p == 0`. (Keyword only.)
        - `inference`: overrides `self.inference` if not `None`.
        - `deterministic`: deprecated alias of `inference`.

        **Returns:** an array of the shape and dtype of `x`.
        """
        if deterministic is not None:
            _warn_deterministic()
            inference = deterministic
        if inference is None:
            inference = self.inference
        if isinstance(self.p, (int, float)) and self.p == 0:
            inference = True
        if inference:
            return x
        if key is None:
            raise dropout_key_error(self.p)
        return _dropout(x, self.p, key)


def _dropout(x: Array, p: ArrayLike, key: PRNGKeyArray) -> Array:
    keep = 1 - lax.stop_gradient(p)
    mask = jr.bernoulli(key, keep, jnp.shape(x))
    return jnp.where(mask, x / keep, 0)
