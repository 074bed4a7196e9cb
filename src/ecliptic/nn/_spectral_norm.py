"""`SpectralNorm`: divide a layer's weight by (an estimate of) its largest singular
value, kept up to date by power iterations stored in the `State`."""

from __future__ import annotations

from typing import Generic, TypeVar

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, PRNGKeyArray

from .._module import field
from ._misc import matrix_weight, with_attr
from ._stateful import State, StatefulLayer, StateIndex


_Layer = TypeVar("_Layer")


def _normalise(x: Array, eps: float) -> Array:
    return x / jnp.maximum(eps, jnp.sqrt(jnp.sum(x**2)))


def _power_iteration(
    weight: Array, u: Array, v: Array, eps: float
) -> tuple[Array, Array]:
    del u
    u = _normalise(weight @ v, eps)
    v = _normalise(weight.T @ u, eps)
    return u, v


class SpectralNorm(StatefulLayer, Generic[_Layer]):
    r"""Wraps a layer so that its weight $W$ is replaced by $W / \sigma(W)$, where
    $\sigma(W)$ is the largest singular value estimated by power iteration. The power
    iteration vectors `(u, v)` live in the [`ecliptic.nn.State`][] and are updated on
    each call in training (not in inference). A weight of more than two axes is
    treated as the matrix `(shape[0], prod(shape[1:]))`.
    """

    layer: _Layer
    weight_name: str = field(static=True)
    uv_index: StateIndex
    num_power_iterations: int = field(static=True)
    eps: float = field(static=True)
    inference: bool

    def __init__(
        self,
        layer: _Layer,
        weight_name: str,
        num_power_iterations: int = 1,
        eps: float = 1e-12,
        inference: bool = False,
        *,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `layer`: the layer to wrap, e.g. an [`ecliptic.nn.Linear`][].
        - `weight_name`: the name of its weight array (at least 2 axes).
        - `num_power_iterations`: power iterations per call in training.
        - `eps`: lower bound on norms, for numerical stability.
        - `inference`: if `True`, use the stored vectors without updating them.
        - `key`: PRNG key for the initial vectors `u`, `v` (in the weight's dtype).
        """
        subject = f"ecliptic.nn.SpectralNorm(weight_name={weight_name!r})"
        weight = matrix_weight(layer, weight_name, subject, 2)
        self.layer = layer
        self.weight_name = weight_name
        self.num_power_iterations = num_power_iterations
        self.eps = eps
        self.inference = inference
        matrix = jnp.reshape(weight, (weight.shape[0], -1))
        ukey, vkey = jr.split(key)
        u = jr.normal(ukey, (matrix.shape[0],), dtype=matrix.dtype)
        v = jr.normal(vkey, (matrix.shape[1],), dtype=matrix.dtype)
        for _ in range(15):
            u, v = _power_iteration(matrix, u, v, eps)
        self.uv_index = StateIndex((u, v))

    def __call__(
        self,
        x: Array,
        state: State,
        *,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
    ) -> tuple[Array, State]:
        """**Arguments:**

        - `x`: the wrapped layer's input (whatever shape it takes).
        - `state`: the [`ecliptic.nn.State`][] holding `(u, v)`.
        - `key`: ignored.
        - `inference`: overrides `self.inference` if not `None`.

        **Returns:** `(layer(x) with the normalised weight, state)`.
        """
        if inference is None:
            inference = self.inference
        with jax.named_scope("ecliptic.nn.SpectralNorm"):
            u, v = state.get(self.uv_index)
            weight = getattr(self.layer, self.weight_name)
            matrix = jnp.reshape(weight, (weight.shape[0], -1))
            if not inference:
                frozen = lax.stop_gradient(matrix)
                for _ in range(self.num_power_iterations):
                    u, v = _power_iteration(frozen, u, v, self.eps)
                state = state.set(self.uv_index, (u, v))
            sigma = jnp.einsum("i,ij,j->", u, matrix, v)
            new_weight = jnp.reshape(matrix / sigma, weight.shape)
            layer = with_attr(self.layer, self.weight_name, new_weight)
            return layer(x), state  # pyright: ignore
