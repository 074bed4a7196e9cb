"""`BatchNorm`: normalisation by statistics over a named batch axis."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe
from .._messages import (
    batch_norm_default_mode_message,
    batch_norm_hint,
    batch_norm_mode_error,
    batch_norm_unbound_axis_error,
)
from .._module import field
from ._misc import compute_dtype, param_dtype
from ._stateful import State, StatefulLayer, StateIndex


def _axis_names(axis_name: Any) -> tuple[Hashable, ...]:
    if isinstance(axis_name, (tuple, list)):
        return tuple(axis_name)
    return (axis_name,)


class BatchNorm(StatefulLayer):
    r"""Normalises each channel by its mean and variance over the batch (a named
    `vmap`/`pmap` axis) and the spatial axes, then (optionally) applies a channelwise
    affine map. Must run under `jax.vmap(..., axis_name=axis_name)` (or `pmap`), with
    the state unbatched: `in_axes=(0, None), out_axes=(0, None)`.

    - `mode="batch"` (recommended): training uses the batch statistics and updates
      an exponential moving average; inference uses the debiased average.
    - `mode="ema"` (the default, for compatibility; warns): training normalises by
      the running average itself (seeded with the first batch's statistics).
    """

    weight: Array | None
    bias: Array | None
    ema_first_time_index: StateIndex | None
    ema_state_index: StateIndex | None
    batch_counter: StateIndex | None
    batch_state_index: StateIndex | None
    axis_name: Hashable | Sequence[Hashable]
    inference: bool
    input_size: int = field(static=True)
    eps: float = field(static=True)
    channelwise_affine: bool = field(static=True)
    momentum: float = field(static=True)
    mode: Literal["ema", "batch"] = field(static=True)

    def __init__(
        self,
        input_size: int,
        axis_name: Hashable | Sequence[Hashable],
        eps: float = 1e-5,
        channelwise_affine: bool = True,
        momentum: float = 0.99,
        inference: bool = False,
        dtype: Any = None,
        mode: Literal["ema", "batch", "legacy"] = "legacy",
    ):
        """**Arguments:**

        - `input_size`: the number of channels (axis 0 of the input).
        - `axis_name`: the name (or a sequence of names) of the `vmap`/`pmap` batch
            axis to compute statistics over.
        - `eps`: added to the variance for numerical stability.
        - `channelwise_affine`: learn a per-channel `weight` and `bias`, each of
            shape `(input_size,)`.
        - `momentum`: the decay of the running statistics, in `(0, 1)`.
        - `inference`: use the running statistics and leave the state unchanged.
            Toggle with [`ecliptic.nn.inference_mode`][] or the call argument.
        - `dtype`: dtype of the parameters and running statistics; defaults to
            float32 (float64 in 64-bit mode).
        - `mode`: `"batch"` or `"ema"` (see above). Unspecified means `"ema"`, with
            a warning.
        """
        if mode == "legacy":
            mode = "ema"
            warnings.warn(batch_norm_default_mode_message(), stacklevel=2)
        if mode not in ("ema", "batch"):
            raise batch_norm_mode_error(input_size, mode)
        dtype = param_dtype(dtype)
        self.mode = mode
        if channelwise_affine:
            self.weight = jnp.ones((input_size,), dtype=dtype)
            self.bias = jnp.zeros((input_size,), dtype=dtype)
        else:
            self.weight = None
            self.bias = None
        self.ema_first_time_index = None
        self.ema_state_index = None
        self.batch_counter = None
        self.batch_state_index = None
        if mode == "ema":
            self.ema_first_time_index = StateIndex(jnp.array(True))
            self.ema_state_index = StateIndex(
                (jnp.empty((input_size,), dtype), jnp.empty((input_size,), dtype))
            )
        else:
            self.batch_counter = StateIndex(jnp.array(0))
            self.batch_state_index = StateIndex(
                (jnp.zeros((input_size,), dtype), jnp.ones((input_size,), dtype))
            )
        self.inference = inference
        self.axis_name = axis_name
        self.input_size = input_size
        self.eps = eps
        self.channelwise_affine = channelwise_affine
        self.momentum = momentum

    def _subject(self) -> str:
        return describe(
            self, input_size=self.input_size, axis_name=self.axis_name, mode=self.mode
        )

    def _check(self, x: Array) -> None:
        expected = (self.input_size,) + (None,) * max(x.ndim - 1, 0)
        check_shape(
            self._subject(),
            x,
            expected,
            axis_names=[f"input_size={self.input_size}"] + [None] * (len(expected) - 1),
            hint=batch_norm_hint(self.axis_name),
        )

    def _check_axis_names(self) -> None:
        """Statistics need the named batch axis (only in training)."""
        for name in _axis_names(self.axis_name):
            try:
                lax.axis_size(name)
            except NameError:
                raise batch_norm_unbound_axis_error(self._subject(), name) from None

    def _stats(self, x: Array) -> tuple[Array, Array]:
        """Per-channel mean and variance over the spatial and batch axes."""
        self._check_axis_names()

        def one_channel(y: Array) -> tuple[Array, Array]:
            mean = lax.pmean(jnp.mean(y), self.axis_name)
            var = lax.pmean(jnp.mean((y - mean) * jnp.conj(y - mean)), self.axis_name)
            return mean, jnp.maximum(0.0, var)

        return jax.vmap(one_channel)(x)

    def __call__(
        self,
        x: Array,
        state: State,
        *,
        key: PRNGKeyArray | None = None,
        inference: bool | None = None,
    ) -> tuple[Array, State]:
        """**Arguments:**

        - `x`: one example, of shape `(input_size, *spatial)`.
        - `state`: the [`ecliptic.nn.State`][] holding the running statistics.
        - `key`: ignored.
        - `inference`: overrides `self.inference` if not `None`.

        **Returns:** `(out, state)`: `out` of shape `(input_size, *spatial)` and
        `x`'s dtype, and the updated state.
        """
        self._check(x)
        if inference is None:
            inference = self.inference
        with jax.named_scope("ecliptic.nn.BatchNorm"):
            dtype = compute_dtype(x.dtype)
            y = x.astype(dtype)
            if self.mode == "ema":
                mean, var, state = self._ema(y, state, inference)
            else:
                mean, var, state = self._batch(y, state, inference)
            bshape = (self.input_size,) + (1,) * (x.ndim - 1)
            mean = jnp.reshape(mean.astype(dtype), bshape)
            var = jnp.reshape(var.astype(dtype), bshape)
            out = (y - mean) / jnp.sqrt(var + self.eps)
            if self.channelwise_affine:
                w = jnp.reshape(self.weight, bshape).astype(dtype)  # pyright: ignore
                b = jnp.reshape(self.bias, bshape).astype(dtype)  # pyright: ignore
                out = out * w + b
        return out.astype(x.dtype), state

    def _ema(
        self, y: Array, state: State, inference: bool
    ) -> tuple[Array, Array, State]:
        assert self.ema_state_index is not None
        assert self.ema_first_time_index is not None
        if inference:
            mean, var = state.get(self.ema_state_index)
            return mean, var, state
        first_time = state.get(self.ema_first_time_index)
        state = state.set(self.ema_first_time_index, jnp.array(False))
        batch_mean, batch_var = self._stats(y)
        running_mean, running_var = state.get(self.ema_state_index)
        m = self.momentum
        mean = (1 - m) * batch_mean + m * running_mean.astype(y.dtype)
        var = (1 - m) * batch_var + m * running_var.astype(y.dtype)
        mean = lax.select(first_time, batch_mean, mean)
        var = lax.select(first_time, batch_var, var)
        sdtype = running_mean.dtype
        state = state.set(
            self.ema_state_index, (mean.astype(sdtype), var.astype(sdtype))
        )
        return mean, var, state

    def _batch(
        self, y: Array, state: State, inference: bool
    ) -> tuple[Array, Array, State]:
        assert self.batch_state_index is not None
        assert self.batch_counter is not None
        counter = state.get(self.batch_counter)
        hidden_mean, hidden_var = state.get(self.batch_state_index)
        m = self.momentum
        if inference:
            dtype = compute_dtype(hidden_mean.dtype)
            steps = counter.astype(dtype)
            scale = jnp.where(counter == 0, 1.0, 1 - m**steps)
            mean = hidden_mean.astype(dtype) / scale
            return mean, hidden_var.astype(dtype) / scale, state
        mean, var = self._stats(y)
        sdtype = hidden_mean.dtype
        new_mean = hidden_mean * m + (mean * (1 - m)).astype(sdtype)
        new_var = hidden_var * m + (var * (1 - m)).astype(sdtype)
        state = state.set(self.batch_counter, counter + 1)
        state = state.set(self.batch_state_index, (new_mean, new_var))
        return mean, var, state
