"""Pooling: `Pool` (sliding window), `AvgPool*d`, `MaxPool*d`, and adaptive pooling."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe
from .._messages import (
    adaptive_pool_input_error,
    adaptive_pool_target_error,
    pool_padding_error,
    pool_padding_too_large_error,
)
from .._module import field, Module
from ._misc import check_windows_fit, ntuple, owner_name


def _pool_padding(owner: str, padding: Any, n: int) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, Sequence) and len(padding) == n:
        if all(isinstance(p, Sequence) and len(p) == 2 for p in padding):
            return tuple((int(lo), int(hi)) for lo, hi in padding)
        if all(isinstance(p, (int, np.integer)) for p in padding):
            return tuple((int(p), int(p)) for p in padding)
    raise pool_padding_error(owner, padding, n)


class Pool(Module):
    """N-dimensional reduction over a sliding window (the base of max/avg pooling).

    Acts on one example of shape `(channels, *spatial)`. A spatial axis that cannot
    hold one window, even padded, raises a `ValueError` (Equinox returns an empty
    array).
    """

    init: int | float | Array
    operation: Callable[[Array, Array], Array]
    num_spatial_dims: int = field(static=True)
    kernel_size: tuple[int, ...] = field(static=True)
    stride: tuple[int, ...] = field(static=True)
    padding: tuple[tuple[int, int], ...] = field(static=True)
    use_ceil: bool = field(static=True)

    def __init__(
        self,
        init: int | float | Array,
        operation: Callable[[Array, Array], Array],
        num_spatial_dims: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `init`: the initial value of the reduction (its identity, e.g. `0` for
            `lax.add`, `-inf` for `lax.max`), also the value of padded entries.
        - `operation`: the binary reduction, e.g. `lax.max`.
        - `num_spatial_dims`: the number of spatial axes.
        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride: an int or one per spatial axis. Defaults to
            1 (unlike PyTorch, whose default is `kernel_size`).
        - `padding`: an int, one int per spatial axis, or one `(low, high)` pair per
            spatial axis. Each side must be at most the kernel size.
        - `use_ceil`: if `True`, the output size rounds up instead of down (extra
            padding is added at the end when needed).

        For `Pool` to be differentiable, `operation(init, x) == x` must hold for
        finite `x`.
        """
        owner = owner_name(self)
        self.init = init
        self.operation = operation
        self.num_spatial_dims = num_spatial_dims
        self.kernel_size = ntuple(owner, "kernel_size", kernel_size, num_spatial_dims)
        self.stride = ntuple(owner, "stride", stride, num_spatial_dims)
        self.padding = _pool_padding(owner, padding, num_spatial_dims)
        self.use_ceil = use_ceil
        self._check_padding(self.padding, ceil=False)

    def _subject(self) -> str:
        return describe(self, kernel_size=self.kernel_size, stride=self.stride)

    def _check_padding(
        self, padding: tuple[tuple[int, int], ...], *, ceil: bool
    ) -> None:
        for (lo, hi), k in zip(padding, self.kernel_size, strict=True):
            if max(lo, hi) > k:
                raise pool_padding_too_large_error(
                    self._subject(), (lo, hi), k, ceil=ceil
                )

    def _ceil_padding(self, spatial: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        pads = []
        for n, (lo, hi), k, s in zip(
            spatial, self.padding, self.kernel_size, self.stride, strict=True
        ):
            pads.append((lo, hi) if (n + lo + hi - k) % s == 0 else (lo, hi + s))
        return tuple(pads)

    @jax.named_scope("ecliptic.nn.Pool")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, *spatial)`. Batch with
            `jax.vmap(pool)(x)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, *new_spatial)`.
        """
        del key
        check_shape(self._subject, x, ("channels",) + (None,) * self.num_spatial_dims)
        padding = self.padding
        if self.use_ceil:
            padding = self._ceil_padding(x.shape[1:])
            self._check_padding(padding, ceil=True)
        check_windows_fit(
            self._subject,
            x.shape,
            padding,
            self.kernel_size,
            convolution=False,
        )
        return lax.reduce_window(
            x,
            self.init,
            self.operation,
            (1,) + self.kernel_size,
            (1,) + self.stride,
            ((0, 0),) + padding,
        )


class AvgPool1d(Pool):
    """1-dimensional downsampling by the average over a sliding window.

    Padded entries count as zeros in the average.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(0, lax.add, 1, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.AvgPool1d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim)`.
        """
        return super().__call__(x) / math.prod(self.kernel_size)


class MaxPool1d(Pool):
    """1-dimensional downsampling by the maximum over a sliding window."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(-jnp.inf, lax.max, 1, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.MaxPool1d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim)`.
        """
        return super().__call__(x)


class AvgPool2d(Pool):
    """2-dimensional downsampling by the average over a sliding window.

    Padded entries count as zeros in the average.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(0, lax.add, 2, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.AvgPool2d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim_1, dim_2)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim_1, new_dim_2)`.
        """
        return super().__call__(x) / math.prod(self.kernel_size)


class MaxPool2d(Pool):
    """2-dimensional downsampling by the maximum over a sliding window."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(-jnp.inf, lax.max, 2, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.MaxPool2d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim_1, dim_2)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim_1, new_dim_2)`.
        """
        return super().__call__(x)


class AvgPool3d(Pool):
    """3-dimensional downsampling by the average over a sliding window.

    Padded entries count as zeros in the average.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(0, lax.add, 3, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.AvgPool3d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim_1, dim_2, dim_3)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim_1, new_dim_2, new_dim_3)`.
        """
        return super().__call__(x) / math.prod(self.kernel_size)


class MaxPool3d(Pool):
    """3-dimensional downsampling by the maximum over a sliding window."""

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        use_ceil: bool = False,
    ):
        """**Arguments:**

        - `kernel_size`: the window size: an int or one per spatial axis.
        - `stride`: the window stride (default 1, unlike PyTorch).
        - `padding`: an int, one int per spatial axis, or `(low, high)` pairs.
        - `use_ceil`: if `True`, the output size rounds up instead of down.
        """
        super().__init__(-jnp.inf, lax.max, 3, kernel_size, stride, padding, use_ceil)

    @jax.named_scope("ecliptic.nn.MaxPool3d")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, dim_1, dim_2, dim_3)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, new_dim_1, new_dim_2, new_dim_3)`.
        """
        return super().__call__(x)


def _adaptive_last_axis(x: Array, target: int, operation: Callable) -> Array:
    """Pools the last axis of `x` (size `n`) down to `target` windows.

    The first `n % target` windows have `n // target + 1` entries, the others
    `n // target` (contiguous, non-overlapping). `operation` reduces one 1-d window
    to a scalar and is mapped over all other axes.
    """
    n = x.shape[-1]
    size, n_big = divmod(n, target)
    lead = x.shape[:-1]
    split = n_big * (size + 1)
    parts = [x[..., :split].reshape(lead + (n_big, size + 1))]
    if target > n_big:
        parts.append(x[..., split:].reshape(lead + (target - n_big, size)))
    reduce = operation
    for _ in range(x.ndim):
        reduce = jax.vmap(reduce)
    return jnp.concatenate([reduce(p) for p in parts if p.shape[-2]], axis=-1)


class AdaptivePool(Module):
    """N-dimensional pooling down to a fixed output size, whatever the input size.

    Acts on one example of shape `(channels, *spatial)` and returns
    `(channels, *target_shape)`.
    """

    target_shape: tuple[int, ...] = field(static=True)
    operation: Callable[[Array], Array]

    def __init__(
        self,
        target_shape: int | Sequence[int],
        num_spatial_dims: int,
        operation: Callable,
    ):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or one per spatial
            axis.
        - `num_spatial_dims`: the number of spatial axes.
        - `operation`: reduces a 1-d window to a scalar, e.g. `jnp.mean`.
        """
        owner = owner_name(self)
        self.target_shape = ntuple(
            owner, "target_shape", target_shape, num_spatial_dims
        )
        if any(t < 1 for t in self.target_shape):
            raise adaptive_pool_target_error(owner, self.target_shape)
        self.operation = operation

    def _subject(self) -> str:
        return describe(self, target_shape=self.target_shape)

    @jax.named_scope("ecliptic.nn.AdaptivePool")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(channels, *spatial)`; each spatial size must
            be at least the matching target size. Batch with `jax.vmap(pool)(x)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(channels, *target_shape)`.
        """
        del key
        n = len(self.target_shape)
        check_shape(self._subject, x, ("channels",) + (None,) * n)
        if any(s < t for s, t in zip(x.shape[1:], self.target_shape, strict=True)):
            raise adaptive_pool_input_error(
                self._subject(), tuple(x.shape), self.target_shape
            )
        for axis, target in enumerate(self.target_shape, start=1):
            x = jnp.moveaxis(x, axis, -1)
            x = _adaptive_last_axis(x, target, self.operation)
            x = jnp.moveaxis(x, -1, axis)
        return x


class AdaptiveAvgPool1d(AdaptivePool):
    """Adaptive 1-dimensional downsampling to `target_shape` by the average."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 1 ints.
        """
        super().__init__(target_shape, num_spatial_dims=1, operation=jnp.mean)


class AdaptiveMaxPool1d(AdaptivePool):
    """Adaptive 1-dimensional downsampling to `target_shape` by the maximum."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 1 ints.
        """
        super().__init__(target_shape, num_spatial_dims=1, operation=jnp.max)


class AdaptiveAvgPool2d(AdaptivePool):
    """Adaptive 2-dimensional downsampling to `target_shape` by the average."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 2 ints.
        """
        super().__init__(target_shape, num_spatial_dims=2, operation=jnp.mean)


class AdaptiveMaxPool2d(AdaptivePool):
    """Adaptive 2-dimensional downsampling to `target_shape` by the maximum."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 2 ints.
        """
        super().__init__(target_shape, num_spatial_dims=2, operation=jnp.max)


class AdaptiveAvgPool3d(AdaptivePool):
    """Adaptive 3-dimensional downsampling to `target_shape` by the average."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 3 ints.
        """
        super().__init__(target_shape, num_spatial_dims=3, operation=jnp.mean)


class AdaptiveMaxPool3d(AdaptivePool):
    """Adaptive 3-dimensional downsampling to `target_shape` by the maximum."""

    def __init__(self, target_shape: int | Sequence[int]):
        """**Arguments:**

        - `target_shape`: the output's spatial shape: an int or 3 ints.
        """
        super().__init__(target_shape, num_spatial_dims=3, operation=jnp.max)
