"""`Conv` and `ConvTranspose` in N dimensions (their 1d/2d/3d versions are in
`_conv_nd.py`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_shape, describe, dtype_error
from .._messages import (
    conv_channels_last_hint,
    conv_circular_padding_error,
    conv_groups_error,
    conv_output_padding_error,
    conv_padding_error,
    conv_padding_mode_error,
    conv_transpose_output_size_error,
)
from .._module import field, Module
from ._misc import (
    check_windows_fit,
    default_init,
    initialise,
    Initialiser,
    ntuple,
    owner_name,
    param_dtype,
)


Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]
_PAD_STRINGS = ("SAME", "SAME_LOWER", "VALID")
_NUMPY_MODES = {"REFLECT": "reflect", "REPLICATE": "edge", "CIRCULAR": "wrap"}


def _parse_padding(
    owner: str, padding: Padding, n: int
) -> str | tuple[tuple[int, int], ...]:
    """Normalises `padding` to `"SAME"`/`"SAME_LOWER"`/`"VALID"` or `n` pairs."""
    if isinstance(padding, str):
        if padding.upper() not in _PAD_STRINGS:
            raise conv_padding_error(owner, padding, n, per_axis=False)
        return padding.upper()
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return ((int(padding), int(padding)),) * n
    if isinstance(padding, Sequence) and len(padding) == n:
        pairs = []
        for p in padding:
            if isinstance(p, Sequence) and len(p) == 2:
                pairs.append((int(p[0]), int(p[1])))
            elif isinstance(p, (int, np.integer)) and not isinstance(p, bool):
                pairs.append((int(p), int(p)))
            else:
                break
        else:
            return tuple(pairs)
    raise conv_padding_error(owner, padding, n)


def _parse_padding_mode(owner: str, mode: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(mode, str) or mode.upper() not in allowed:
        raise conv_padding_mode_error(owner, mode, allowed)
    return mode.upper()


def _init_params(
    layer: Any, owner: str, use_bias: bool, dtype: Any, key: Any, inits: tuple
) -> None:
    """Checks `groups`, then draws the weight `(out, in // groups, *kernel)` and the
    bias `(out, 1, ..., 1)` with `inits = (weight_init, bias_init)`, by default both
    `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = in // groups * prod(kernel)`."""
    c_in, c_out, groups = layer.in_channels, layer.out_channels, layer.groups
    if groups < 1 or c_in % groups or c_out % groups:
        raise conv_groups_error(owner, c_in, c_out, groups)
    dtype = param_dtype(dtype)
    wkey, bkey = jax.random.split(key, 2)
    kernel_size = layer.kernel_size
    fan_in = (c_in // groups) * math.prod(kernel_size)
    lim = 1 / math.sqrt(fan_in) if fan_in else 1.0
    default = functools.partial(default_init, lim=lim)
    draw = functools.partial(initialise, owner, dtype=dtype, default=default)
    wshape = (c_out, c_in // groups) + kernel_size
    layer.weight = draw("weight_init", inits[0], wkey, wshape)
    bshape = (c_out,) + (1,) * len(kernel_size)
    layer.bias = draw("bias_init", inits[1], bkey, bshape) if use_bias else None


def _subject(layer: Any) -> str:
    """The layer as error messages name it, with its channels and kernel size."""
    return describe(
        layer,
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        kernel_size=layer.kernel_size,
    )


def _check_input(layer: Any, x: Array) -> None:
    """Input `(in_channels, *spatial)`; hints at channels-last layouts."""
    n = layer.num_spatial_dims
    c = layer.in_channels
    hint = None
    shape = jnp.shape(x)
    if len(shape) == n + 1 and shape[0] != c and shape[-1] == c:
        hint = conv_channels_last_hint()
    check_shape(
        layer._subject,
        x,
        (c,) + (None,) * n,
        axis_names=(f"in_channels={c}",) + (None,) * n,
        hint=hint,
    )
    if x.dtype != layer.weight.dtype:
        # `lax.conv_general_dilated` needs equal dtypes under any promotion mode.
        raise dtype_error(layer._subject(), layer.weight.dtype, x.dtype)


def _extents(layer: Any) -> tuple[int, ...]:
    """The dilated kernel size on each spatial axis: `d * (k - 1) + 1`."""
    kernel, dilation = layer.kernel_size, layer.dilation
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))


def _check_spatial(layer: Any, shape: tuple[int, ...], padding: Any) -> None:
    """Each padded spatial axis must hold the dilated kernel at least once."""
    if padding == "VALID":
        padding = ((0, 0),) * layer.num_spatial_dims
    elif isinstance(padding, str):
        return  # SAME / SAME_LOWER: the output has ceil(size / stride) entries
    check_windows_fit(
        layer._subject,
        shape,
        padding,
        _extents(layer),
        convolution=True,
    )


class Conv(Module):
    """N-dimensional convolution of one example of shape `(in_channels, *spatial)`.

    The input's rank, channel count and dtype are checked at trace time: a batch
    axis, a channels-last layout, a spatial axis smaller than the (dilated) kernel
    (Equinox returns an empty array there) or a dtype other than the parameters'
    raise an error that says how to fix it.
    """

    num_spatial_dims: int = field(static=True)
    weight: Array
    bias: Array | None
    in_channels: int = field(static=True)
    out_channels: int = field(static=True)
    kernel_size: tuple[int, ...] = field(static=True)
    stride: tuple[int, ...] = field(static=True)
    padding: str | tuple[tuple[int, int], ...] = field(static=True)
    dilation: tuple[int, ...] = field(static=True)
    groups: int = field(static=True)
    use_bias: bool = field(static=True)
    padding_mode: str = field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `num_spatial_dims`: the number of spatial axes (2 for images).
        - `in_channels`: the number of input channels.
        - `out_channels`: the number of output channels.
        - `kernel_size`: the kernel size: an int, or one int per spatial axis.
        - `stride`: the stride: an int, or one per spatial axis.
        - `padding`: an int; one int per spatial axis; one `(low, high)` pair per
            spatial axis; or one of `"SAME"`, `"SAME_LOWER"` (output size
            `ceil(size / stride)`; an odd total pad goes at the end, resp. the
            start) and `"VALID"` (no padding). Case-insensitive.
        - `dilation`: the kernel dilation: an int, or one per spatial axis.
        - `groups`: split the channels into this many independent groups; must
            divide `in_channels` and `out_channels`.
        - `use_bias`: whether to add a bias.
        - `padding_mode`: what to pad with: `"ZEROS"` (`1234 -> 00123400`),
            `"REFLECT"` (`32123432`), `"REPLICATE"` (`11123444`) or `"CIRCULAR"`
            (`34123412`).
        - `dtype`: the parameters' dtype. Defaults to `float32`, or `float64` when
            JAX runs in 64-bit mode.
        - `weight_init`: how to draw the weight instead of the default: an
            initialiser `init(key, shape, dtype) -> array`, such as those of
            `jax.nn.initializers`, called with the weight's half of `key` (the one
            the default would use), the weight's shape and the dtype. Mind the fan
            axes (below). (Keyword only.)
        - `bias_init`: the same for the bias, called with the bias's shape
            `(out_channels, 1, ..., 1)`: use one without fans, e.g.
            `jax.nn.initializers.zeros`. Unused when `use_bias=False`. (Keyword
            only.)
        - `key`: a `jax.random.PRNGKey` for the initialisation. (Keyword only.)

        The weight has shape `(out_channels, in_channels // groups, *kernel_size)`
        and the bias `(out_channels, 1, ..., 1)`. By default both are drawn from
        `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = in_channels // groups *
        prod(kernel_size)`, as in Equinox and PyTorch.

        **Fan axes.** For a variance-scaling `weight_init` (`lecun_*`, `he_*`,
        `glorot_*`, `variance_scaling`), name the axes of this layout:
        `jax.nn.initializers.he_normal(in_axis=1, out_axis=0)`, whose fan-in is
        the `in_channels // groups * prod(kernel_size)` above. The defaults
        `in_axis=-2, out_axis=-1` would take kernel axes as the fans.
        """
        owner = owner_name(self)
        kernel_size = ntuple(owner, "kernel_size", kernel_size, num_spatial_dims)
        self.num_spatial_dims = num_spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = ntuple(owner, "stride", stride, num_spatial_dims)
        self.padding = _parse_padding(owner, padding, num_spatial_dims)
        self.dilation = ntuple(owner, "dilation", dilation, num_spatial_dims)
        self.groups = groups
        self.use_bias = use_bias
        allowed = ("ZEROS", "REFLECT", "REPLICATE", "CIRCULAR")
        self.padding_mode = _parse_padding_mode(owner, padding_mode, allowed)
        _init_params(self, owner, use_bias, dtype, key, (weight_init, bias_init))

    def _subject(self) -> str:
        return _subject(self)

    def _pads(self, spatial: tuple[int, ...]) -> list[tuple[int, int]]:
        if isinstance(self.padding, str):
            extents = _extents(self)
            return lax.padtype_to_pads(spatial, extents, self.stride, self.padding)
        return list(self.padding)

    @jax.named_scope("ecliptic.nn.Conv")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(in_channels, *spatial)` with
            `num_spatial_dims` spatial axes. Batch with `jax.vmap(conv)(x)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(out_channels, *new_spatial)`.
        """
        del key
        _check_input(self, x)
        _check_spatial(self, x.shape, self.padding)
        padding = self.padding
        if self.padding_mode != "ZEROS":
            pads = [(0, 0)] + list(self._pads(x.shape[1:]))
            x = jnp.pad(x, pads, mode=_NUMPY_MODES[self.padding_mode])
            padding = "VALID"
        y = lax.conv_general_dilated(
            lhs=x.reshape((1,) + x.shape),
            rhs=self.weight,
            window_strides=self.stride,
            padding=padding,
            rhs_dilation=self.dilation,
            feature_group_count=self.groups,
        )
        y = y.reshape(y.shape[1:])
        if self.bias is not None:
            y = y + self.bias
        return y


class ConvTranspose(Module):
    """N-dimensional transposed convolution of one example `(in_channels, *spatial)`.

    With `in_channels` and `out_channels` swapped and the other arguments kept, it
    maps the output shape of a [`ecliptic.nn.Conv`][] back to its input shape, with
    the same connectivity.
    """

    num_spatial_dims: int = field(static=True)
    weight: Array
    bias: Array | None
    in_channels: int = field(static=True)
    out_channels: int = field(static=True)
    kernel_size: tuple[int, ...] = field(static=True)
    stride: tuple[int, ...] = field(static=True)
    padding: str | tuple[tuple[int, int], ...] = field(static=True)
    output_padding: tuple[int, ...] = field(static=True)
    dilation: tuple[int, ...] = field(static=True)
    groups: int = field(static=True)
    use_bias: bool = field(static=True)
    padding_mode: str = field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: Padding = 0,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """**Arguments:**

        - `num_spatial_dims`: the number of spatial axes.
        - `in_channels`: the number of input channels.
        - `out_channels`: the number of output channels.
        - `kernel_size`: the kernel size: an int, or one int per spatial axis.
        - `stride`: the stride of the equivalent `Conv`.
        - `padding`: the padding of the equivalent `Conv` (same forms as there).
        - `output_padding`: extra size added at the end of each spatial axis
            (for `"SAME"`, removed from the computed size), to pick one of the input
            shapes that a strided `Conv` maps to the same output. Must be less than
            `stride`.
        - `dilation`: the kernel dilation.
        - `groups`: the number of channel groups; must divide both channel counts.
        - `use_bias`: whether to add a bias.
        - `padding_mode`: `"ZEROS"` or `"CIRCULAR"` (the latter needs
            `padding="SAME"` or `"SAME_LOWER"` and `output_padding=0`).
        - `dtype`: the parameters' dtype. Defaults to `float32`, or `float64` when
            JAX runs in 64-bit mode.
        - `weight_init`, `bias_init`: initialisers for the weight and the bias, as
            for [`ecliptic.nn.Conv`][] (same layouts, same default). (Keyword only.)
        - `key`: a `jax.random.PRNGKey` for the initialisation. (Keyword only.)

        The weight has shape `(out_channels, in_channels // groups, *kernel_size)`
        and the bias `(out_channels, 1, ..., 1)`, as for `Conv`, so a
        variance-scaling `weight_init` takes `in_axis=1, out_axis=0` (fan-in
        `in_channels // groups * prod(kernel_size)`, as the default's).
        """
        owner = owner_name(self)
        n = num_spatial_dims
        kernel_size = ntuple(owner, "kernel_size", kernel_size, n)
        stride = ntuple(owner, "stride", stride, n)
        output_padding = ntuple(owner, "output_padding", output_padding, n)
        if any(o >= s for o, s in zip(output_padding, stride, strict=True)):
            raise conv_output_padding_error(owner, output_padding, stride)
        padding = _parse_padding(owner, padding, n)
        mode = _parse_padding_mode(owner, padding_mode, ("ZEROS", "CIRCULAR"))
        if mode == "CIRCULAR" and (
            padding not in ("SAME", "SAME_LOWER") or any(output_padding)
        ):
            raise conv_circular_padding_error(owner, padding, output_padding)
        self.num_spatial_dims = n
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.output_padding = output_padding
        self.dilation = ntuple(owner, "dilation", dilation, n)
        self.groups = groups
        self.use_bias = use_bias
        self.padding_mode = mode
        _init_params(self, owner, use_bias, dtype, key, (weight_init, bias_init))

    def _subject(self) -> str:
        return _subject(self)

    def _transposed_padding(self) -> list[tuple[int, int]]:
        """Padding of the stride-1 convolution of the dilated input (Dumoulin &
        Visin 2016, relationship 14): `d (k - 1) - p` on each side, plus
        `output_padding` at the end."""
        pads = []
        for i in range(self.num_spatial_dims):
            k, s, d = self.kernel_size[i], self.stride[i], self.dilation[i]
            extra = self.output_padding[i]
            span = d * (k - 1)
            if self.padding == "VALID":
                lo = hi = 0
            elif isinstance(self.padding, str):
                total = span + 1 - s + extra
                extra = max(-total, 0)
                total = max(total, 0)
                lo = (total + (self.padding == "SAME_LOWER")) // 2
                hi = total - lo
            else:
                lo, hi = self.padding[i]
            pads.append((span - lo, span - hi + extra))
        return pads

    def _check_output_size(self, shape: tuple[int, ...], pads: list) -> None:
        """Too much padding would trim the output to nothing."""
        for i, (size, (lo, hi)) in enumerate(zip(shape[1:], pads, strict=True)):
            s, d, k = self.stride[i], self.dilation[i], self.kernel_size[i]
            out = (size - 1) * s + 1 + lo + hi - d * (k - 1)
            if out <= 0:
                full = (size - 1) * s + d * (k - 1) + 1
                pad = self.padding
                pad = pad if isinstance(pad, str) else pad[i]
                raise conv_transpose_output_size_error(
                    self._subject(), tuple(shape), i, out, pad, full
                )

    @jax.named_scope("ecliptic.nn.ConvTranspose")
    def __call__(self, x: Array, *, key: PRNGKeyArray | None = None) -> Array:
        """**Arguments:**

        - `x`: one example, of shape `(in_channels, *spatial)`. Batch with
            `jax.vmap(conv)(x)`.
        - `key`: ignored. (Keyword only.)

        **Returns:** an array of shape `(out_channels, *new_spatial)`.
        """
        del key
        _check_input(self, x)
        pads = self._transposed_padding()
        self._check_output_size(x.shape, pads)
        if self.padding_mode == "CIRCULAR":
            wrap = [(0, 0)] + [
                (lo // s, hi // s)
                for (lo, hi), s in zip(pads, self.stride, strict=True)
            ]
            x = jnp.pad(x, wrap, mode="wrap")
            pads = [
                (lo % s, hi % s) for (lo, hi), s in zip(pads, self.stride, strict=True)
            ]
        y = lax.conv_general_dilated(
            lhs=x.reshape((1,) + x.shape),
            rhs=self.weight,
            window_strides=(1,) * self.num_spatial_dims,
            padding=pads,
            lhs_dilation=self.stride,
            rhs_dilation=self.dilation,
            feature_group_count=self.groups,
        )
        y = y.reshape(y.shape[1:])
        if self.bias is not None:
            y = y + self.bias
        return y
