"""`Conv1d`/`Conv2d`/`Conv3d` and `ConvTranspose1d`/`2d`/`3d`: `Conv` and
`ConvTranspose` (in `_conv.py`) with the number of spatial axes fixed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jaxtyping import PRNGKeyArray

from ._conv import Conv, ConvTranspose, Padding
from ._misc import Initialiser


class Conv1d(Conv):
    """As [`ecliptic.nn.Conv`][] with `num_spatial_dims=1`."""

    def __init__(
        self,
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
        """As [`ecliptic.nn.Conv`][], without `num_spatial_dims`."""
        super().__init__(
            1, in_channels, out_channels, kernel_size, stride, padding, dilation,
            groups, use_bias, padding_mode, dtype, weight_init=weight_init,
            bias_init=bias_init, key=key,
        )  # fmt: skip


class Conv2d(Conv):
    """As [`ecliptic.nn.Conv`][] with `num_spatial_dims=2`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = (1, 1),
        padding: Padding = (0, 0),
        dilation: int | Sequence[int] = (1, 1),
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """As [`ecliptic.nn.Conv`][], without `num_spatial_dims`."""
        super().__init__(
            2, in_channels, out_channels, kernel_size, stride, padding, dilation,
            groups, use_bias, padding_mode, dtype, weight_init=weight_init,
            bias_init=bias_init, key=key,
        )  # fmt: skip


class Conv3d(Conv):
    """As [`ecliptic.nn.Conv`][] with `num_spatial_dims=3`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = (1, 1, 1),
        padding: Padding = (0, 0, 0),
        dilation: int | Sequence[int] = (1, 1, 1),
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """As [`ecliptic.nn.Conv`][], without `num_spatial_dims`."""
        super().__init__(
            3, in_channels, out_channels, kernel_size, stride, padding, dilation,
            groups, use_bias, padding_mode, dtype, weight_init=weight_init,
            bias_init=bias_init, key=key,
        )  # fmt: skip


class ConvTranspose1d(ConvTranspose):
    """As [`ecliptic.nn.ConvTranspose`][] with `num_spatial_dims=1`.

    Note the positional order: `(..., kernel_size, stride, output_padding, padding,
    dilation, ...)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        output_padding: int | Sequence[int] = 0,
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
        """As [`ecliptic.nn.ConvTranspose`][], without `num_spatial_dims`."""
        super().__init__(
            1, in_channels, out_channels, kernel_size, stride, padding,
            output_padding, dilation, groups, use_bias, padding_mode, dtype,
            weight_init=weight_init, bias_init=bias_init, key=key,
        )  # fmt: skip


class ConvTranspose2d(ConvTranspose):
    """As [`ecliptic.nn.ConvTranspose`][] with `num_spatial_dims=2`.

    Note the positional order: `(..., kernel_size, stride, output_padding, padding,
    dilation, ...)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = (1, 1),
        output_padding: int | Sequence[int] = (0, 0),
        padding: Padding = (0, 0),
        dilation: int | Sequence[int] = (1, 1),
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """As [`ecliptic.nn.ConvTranspose`][], without `num_spatial_dims`."""
        super().__init__(
            2, in_channels, out_channels, kernel_size, stride, padding,
            output_padding, dilation, groups, use_bias, padding_mode, dtype,
            weight_init=weight_init, bias_init=bias_init, key=key,
        )  # fmt: skip


class ConvTranspose3d(ConvTranspose):
    """As [`ecliptic.nn.ConvTranspose`][] with `num_spatial_dims=3`.

    Note the positional order: `(..., kernel_size, stride, output_padding, padding,
    dilation, ...)`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = (1, 1, 1),
        output_padding: int | Sequence[int] = (0, 0, 0),
        padding: Padding = (0, 0, 0),
        dilation: int | Sequence[int] = (1, 1, 1),
        groups: int = 1,
        use_bias: bool = True,
        padding_mode: str = "ZEROS",
        dtype: Any = None,
        *,
        weight_init: Initialiser | None = None,
        bias_init: Initialiser | None = None,
        key: PRNGKeyArray,
    ):
        """As [`ecliptic.nn.ConvTranspose`][], without `num_spatial_dims`."""
        super().__init__(
            3, in_channels, out_channels, kernel_size, stride, padding,
            output_padding, dilation, groups, use_bias, padding_mode, dtype,
            weight_init=weight_init, bias_init=bias_init, key=key,
        )  # fmt: skip
