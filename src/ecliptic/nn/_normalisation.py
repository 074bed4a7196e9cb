"""`LayerNorm`, `RMSNorm`, `GroupNorm`. Statistics are computed in at least float32
and the output is cast back to the input's dtype."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe, warn_deprecated
from .._messages import (
    channels_first_hint,
    group_norm_channels_error,
    group_norm_divisibility_error,
    group_norm_input_error,
)
from .._module import field, Module
from ._misc import compute_dtype, param_dtype
from ._stateful import missing_state, State


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


def _affine(out: Array, weight: Array | None, bias: Array | None) -> Array:
    if weight is not None:
        out = weight.astype(out.dtype) * out
    if bias is not None:
        out = out + bias.astype(out.dtype)
    return out


def _return(out: Array, state: Any) -> Array | tuple[Array, State]:
    return out if state is missing_state else (out, state)


class LayerNorm(Module):
    r"""Normalises the whole input by its mean and variance, then (optionally)
    applies an elementwise affine map: $\frac{x - E[x]}{\sqrt{Var[x] + \epsilon}}
    \gamma + \beta$. To normalise over some axes only, `jax.vmap` over the others.
    """

    shape: tuple[int, ...] = field(static=True)
    eps: float = field(static=True)
    use_weight: bool = field(static=True)
    use_bias: bool = field(static=True)
    weight: Array | None
    bias: Array | None

    def __init__(
        self,
        shape: int | Sequence[int],
        eps: float = 1e-5,
        use_weight: bool = True,
        use_bias: bool = True,
        dtype: Any = None,
        *,
        elementwise_affine: bool | None = None,
    ):
        """**Arguments:**

        - `shape`: the input's shape, e.g. `(features,)`; an int means `(shape,)`.
        - `eps`: added to the variance for numerical stability.
        - `use_weight`: learn an elementwise scale `weight` of shape `shape`.
        - `use_bias`: learn an elementwise shift `bias` of shape `shape`.
        - `dtype`: dtype of `weight` and `bias`; defaults to float32 (float64 in
            64-bit mode).
        - `elementwise_affine`: deprecated; sets both `use_weight` and `use_bias`.
        """
        shape = _as_shape(shape)
        if elementwise_affine is not None:
            warn_deprecated(  # a `UserWarning`, as in Equinox
                "ecliptic.nn.LayerNorm(elementwise_affine=...)",
                "`LayerNorm(use_weight=..., use_bias=...)`",
                category=UserWarning,
            )
            use_weight = use_bias = elementwise_affine
        self.shape = shape
        self.eps = eps
        self.use_weight = use_weight
        self.use_bias = use_bias
        self.weight = jnp.ones(shape, dtype=dtype) if use_weight else None
        self.bias = jnp.zeros(shape, dtype=dtype) if use_bias else None

    def __call__(
        self,
        x: Array,
        state: State = missing_state,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Array | tuple[Array, State]:
        """**Arguments:**

        - `x`: the input, of shape `shape`.
        - `state`: optional; returned unchanged (for interchangeability with
            [`ecliptic.nn.BatchNorm`][]).
        - `key`: ignored.

        **Returns:** an array of shape `shape` and `x`'s dtype; `(out, state)` if
        `state` was given.
        """
        if x.shape != self.shape:
            check_shape(describe(self, shape=self.shape), x, self.shape)
        with jax.named_scope("ecliptic.nn.LayerNorm"):
            dtype = compute_dtype(x.dtype)
            y = x.astype(dtype)
            mean = jnp.mean(y, keepdims=True)
            var = jnp.maximum(0.0, jnp.var(y, keepdims=True))
            out = (y - mean) * lax.rsqrt(var + self.eps)
            out = _affine(out, self.weight, self.bias)
        return _return(out.astype(x.dtype), state)


class RMSNorm(Module):
    r"""Rescales the input by its root mean square, without centring, then
    (optionally) applies an elementwise affine map:
    $\frac{x}{\sqrt{\epsilon + \frac{1}{n}\sum_i x_i^2}} \gamma + \beta$.
    Note that `use_bias` defaults to `True` (as in Equinox).
    """

    shape: tuple[int, ...] = field(static=True)
    eps: float = field(static=True)
    use_weight: bool = field(static=True)
    use_bias: bool = field(static=True)
    weight: Array | None
    bias: Array | None

    def __init__(
        self,
        shape: int | Sequence[int],
        eps: float = 1e-5,
        use_weight: bool = True,
        use_bias: bool = True,
        dtype: Any = None,
    ):
        """**Arguments:**

        - `shape`: the input's shape; an int means `(shape,)`.
        - `eps`: added to the mean square for numerical stability.
        - `use_weight`: learn an elementwise scale `weight` of shape `shape`.
        - `use_bias`: learn an elementwise shift `bias` of shape `shape`.
        - `dtype`: dtype of `weight` and `bias`; defaults to float32 (float64 in
            64-bit mode).
        """
        dtype = param_dtype(dtype)
        shape = _as_shape(shape)
        self.shape = shape
        self.eps = eps
        self.use_weight = use_weight
        self.use_bias = use_bias
        self.weight = jnp.ones(shape, dtype=dtype) if use_weight else None
        self.bias = jnp.zeros(shape, dtype=dtype) if use_bias else None

    def __call__(
        self,
        x: Array,
        state: State = missing_state,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Array | tuple[Array, State]:
        """**Arguments:**

        - `x`: the input, of shape `shape`.
        - `state`: optional; returned unchanged.
        - `key`: ignored.

        **Returns:** an array of shape `shape` and `x`'s dtype; `(out, state)` if
        `state` was given.
        """
        if x.shape != self.shape:
            check_shape(describe(self, shape=self.shape), x, self.shape)
        with jax.named_scope("ecliptic.nn.RMSNorm"):
            dtype = compute_dtype(x.dtype)
            y = x.astype(dtype)
            out = lax.rsqrt(jnp.mean(y**2) + self.eps) * y
            out = _affine(out, self.weight, self.bias)
        return _return(out.astype(x.dtype), state)


class GroupNorm(Module):
    r"""Splits the channels (axis 0) into `groups` groups and normalises each group
    by its own mean and variance, then (optionally) applies a channelwise affine map.
    """

    groups: int = field(static=True)
    channels: int | None = field(static=True)
    eps: float = field(static=True)
    channelwise_affine: bool = field(static=True)
    weight: Array | None
    bias: Array | None

    def __init__(
        self,
        groups: int,
        channels: int | None = None,
        eps: float = 1e-5,
        channelwise_affine: bool = True,
        dtype: Any = None,
    ):
        """**Arguments:**

        - `groups`: the number of groups; must divide `channels`.
        - `channels`: the number of input channels; required if
            `channelwise_affine=True`.
        - `eps`: added to the variance for numerical stability.
        - `channelwise_affine`: learn a per-channel `weight` and `bias`, each of
            shape `(channels,)`.
        - `dtype`: dtype of `weight` and `bias`; defaults to float32 (float64 in
            64-bit mode).
        """
        if channels is not None and channels % groups != 0:
            raise group_norm_divisibility_error(groups, channels)
        if channels is None and channelwise_affine:
            raise group_norm_channels_error(groups)
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.channelwise_affine = channelwise_affine
        self.weight = jnp.ones(channels, dtype=dtype) if channelwise_affine else None
        self.bias = jnp.zeros(channels, dtype=dtype) if channelwise_affine else None

    def _check(self, x: Array) -> None:
        subject = describe(self, groups=self.groups, channels=self.channels)
        channels = "C" if self.channels is None else self.channels
        expected = (channels,) + (None,) * max(x.ndim - 1, 0)
        check_shape(
            subject,
            x,
            expected,
            axis_names=[f"channels={self.channels}"] + [None] * (len(expected) - 1),
            hint=channels_first_hint(),
        )
        if x.shape[0] % self.groups != 0:
            raise group_norm_input_error(subject, self.groups, tuple(x.shape))

    def __call__(
        self, x: Array, state: State = missing_state, *, key: PRNGKeyArray | None = None
    ) -> Array | tuple[Array, State]:
        """**Arguments:**

        - `x`: the input, of shape `(channels, *spatial)`.
        - `state`: optional; returned unchanged.
        - `key`: ignored.

        **Returns:** an array of shape `(channels, *spatial)` and `x`'s dtype;
        `(out, state)` if `state` was given.
        """
        self._check(x)
        with jax.named_scope("ecliptic.nn.GroupNorm"):
            dtype = compute_dtype(x.dtype)
            y = x.astype(dtype)
            c = x.shape[0]
            g = y.reshape(self.groups, c // self.groups, *x.shape[1:])
            axes = tuple(range(1, g.ndim))
            mean = jnp.mean(g, axis=axes, keepdims=True)
            var = jnp.maximum(0.0, jnp.var(g, axis=axes, keepdims=True))
            out = ((g - mean) * lax.rsqrt(var + self.eps)).reshape(x.shape)
            if self.channelwise_affine:
                bshape = (c,) + (1,) * (x.ndim - 1)
                w = jnp.reshape(self.weight, bshape).astype(dtype)  # pyright: ignore
                b = jnp.reshape(self.bias, bshape).astype(dtype)  # pyright: ignore
                out = w * out + b
        return _return(out.astype(x.dtype), state)
