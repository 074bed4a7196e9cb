"""`ecliptic.nn.Conv*` and `ecliptic.nn.ConvTranspose*`."""

import math
import re

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import ecliptic.nn as enn


def _np_conv1d(x, w, b, stride=1, pad=(0, 0), dilation=1):
    """Direct cross-correlation: x (C, n), w (O, C, k) -> (O, m)."""
    x = np.pad(np.asarray(x), ((0, 0), pad))
    w = np.asarray(w)
    out_c, _, k = w.shape
    span = dilation * (k - 1) + 1
    m = (x.shape[1] - span) // stride + 1
    y = np.zeros((out_c, m))
    for o in range(out_c):
        for i in range(m):
            window = x[:, i * stride : i * stride + span : dilation]
            y[o, i] = np.sum(window * w[o]) + b[o, 0]
    return y


@pytest.mark.parametrize("stride,pad,dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2)])
def test_conv1d_matches_direct_computation(getkey, stride, pad, dilation):
    conv = enn.Conv1d(2, 3, 3, stride, pad, dilation, key=getkey())
    x = jr.normal(getkey(), (2, 9))
    want = _np_conv1d(x, conv.weight, conv.bias, stride, (pad, pad), dilation)
    np.testing.assert_allclose(conv(x), want, rtol=1e-5, atol=1e-5)


def test_parameter_shapes_and_init_bound(getkey):
    conv = enn.Conv(2, 4, 6, (3, 2), groups=2, key=getkey())
    assert conv.weight.shape == (6, 2, 3, 2)
    assert conv.bias.shape == (6, 1, 1)
    bound = 1 / math.sqrt(2 * 3 * 2)
    assert float(jnp.max(jnp.abs(conv.weight))) <= bound
    assert enn.Conv3d(1, 1, 1, use_bias=False, key=getkey()).bias is None


@pytest.mark.parametrize(
    "padding,out",
    [("SAME", (4, 3)), ("same_lower", (4, 3)), ("VALID", (3, 2)), (1, (4, 3))],
)
def test_padding_forms_give_shapes(getkey, padding, out):
    conv = enn.Conv2d(1, 2, 3, stride=2, padding=padding, key=getkey())
    assert conv(jnp.ones((1, 7, 5))).shape == (2,) + out


def test_same_and_same_lower_differ_by_the_odd_pad(getkey):
    key = getkey()
    x = jr.normal(getkey(), (1, 6))
    same = enn.Conv1d(1, 1, 2, padding="SAME", key=key)
    lower = enn.Conv1d(1, 1, 2, padding="SAME_LOWER", key=key)
    # Kernel 2 needs one pad: at the end for SAME, at the start for SAME_LOWER.
    explicit_same = enn.Conv1d(1, 1, 2, padding=[(0, 1)], key=key)
    explicit_lower = enn.Conv1d(1, 1, 2, padding=[(1, 0)], key=key)
    np.testing.assert_allclose(same(x), explicit_same(x), rtol=1e-6)
    np.testing.assert_allclose(lower(x), explicit_lower(x), rtol=1e-6)
    assert not np.allclose(same(x), lower(x))


@pytest.mark.parametrize(
    "mode,np_mode",
    [("reflect", "reflect"), ("REPLICATE", "edge"), ("Circular", "wrap")],
)
def test_padding_modes(getkey, mode, np_mode):
    key = getkey()
    conv = enn.Conv1d(1, 1, 3, padding=2, padding_mode=mode, key=key)
    assert conv.padding_mode == mode.upper()
    x = jr.normal(getkey(), (1, 5))
    padded = jnp.pad(x, ((0, 0), (2, 2)), mode=np_mode)
    plain = enn.Conv1d(1, 1, 3, key=key)
    np.testing.assert_allclose(conv(x), plain(padded), rtol=1e-6)


def test_groups_are_independent(getkey):
    conv = enn.Conv1d(4, 2, 1, groups=2, use_bias=False, key=getkey())
    x = jr.normal(getkey(), (4, 3))
    y = conv(x)
    first = conv.weight[0, :, 0] @ x[:2]
    np.testing.assert_allclose(y[0], first, rtol=1e-5)


def test_conv_transpose_is_the_adjoint_of_conv(getkey):
    conv = enn.Conv2d(2, 3, 3, stride=2, padding=1, use_bias=False, key=getkey())
    convt = enn.ConvTranspose2d(
        3, 2, 3, stride=2, output_padding=1, padding=1, use_bias=False, key=getkey()
    )
    weight = jnp.flip(conv.weight, axis=(2, 3)).swapaxes(0, 1)
    convt = jax.tree.map(lambda _: weight, convt)
    x = jr.normal(getkey(), (2, 8, 8))
    y = jr.normal(getkey(), (3, 4, 4))
    assert conv(x).shape == y.shape and convt(y).shape == x.shape
    lhs = jnp.vdot(conv(x), y)
    rhs = jnp.vdot(x, convt(y))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


@pytest.mark.parametrize(
    "padding,output_padding,out",
    [(0, 0, 9), (1, 1, 8), ("SAME", 0, 8), ("SAME", 1, 7), ("VALID", 1, 10)],
)
def test_conv_transpose_shapes(getkey, padding, output_padding, out):
    convt = enn.ConvTranspose1d(1, 2, 3, 2, output_padding, padding, key=getkey())
    assert convt(jnp.ones((1, 4))).shape == (2, out)


def test_conv_transpose_positional_order(getkey):
    key = getkey()
    general = enn.ConvTranspose(2, 1, 1, 3, 2, 1, 1, key=key)
    fixed = enn.ConvTranspose2d(1, 1, 3, 2, 1, 1, key=key)
    assert general.padding == fixed.padding == ((1, 1), (1, 1))
    assert general.output_padding == fixed.output_padding == (1, 1)
    weird = enn.ConvTranspose2d(1, 1, 3, 2, 0, 1, key=key)
    assert weird.output_padding == (0, 0) and weird.padding == ((1, 1), (1, 1))


def test_conv_transpose_circular(getkey):
    convt = enn.ConvTranspose1d(
        1, 1, 3, 1, 0, "SAME", padding_mode="circular", key=getkey()
    )
    x = jr.normal(getkey(), (1, 5))
    rolled = convt(jnp.roll(x, 1, axis=1))
    np.testing.assert_allclose(rolled, jnp.roll(convt(x), 1, axis=1), rtol=1e-5)


def test_batch_axis_is_named(getkey):
    conv = enn.Conv2d(3, 4, 3, key=getkey())
    x = jnp.ones((8, 3, 6, 6))
    match = (
        re.escape(
            "ecliptic.nn.Conv2d(in_channels=3, out_channels=4, kernel_size=(3, 3)) "
            "expected `x` of shape (3, ?, ?), but got shape (8, 3, 6, 6)."
        )
        + ".*"
        + re.escape("`jax.vmap(layer)(x)` (axis 0, of size 8, is the batch axis)")
    )
    with pytest.raises(ValueError, match=match):
        conv(x)
    assert jax.vmap(conv)(x).shape == (8, 4, 4, 4)


def test_channels_last_hint(getkey):
    conv = enn.Conv2d(3, 4, 3, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"Axis 0 must be in_channels=3, not 6\..*"
        r"jnp\.moveaxis\(x, -1, 0\)",
    ):
        conv(jnp.ones((6, 6, 3)))
    convt = enn.ConvTranspose1d(3, 4, 3, key=getkey())
    with pytest.raises(ValueError, match="must have 2 axes, not 1"):
        convt(jnp.ones(3))


def test_input_smaller_than_kernel(getkey):
    conv = enn.Conv1d(1, 1, 3, dilation=2, key=getkey())
    with pytest.raises(
        ValueError, match="smaller than the \\(dilated\\) kernel size 5"
    ):
        conv(jnp.ones((1, 4)))
    same = enn.Conv1d(1, 1, 3, dilation=2, padding="SAME", key=getkey())
    assert same(jnp.ones((1, 4))).shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"kernel_size": (3, 3, 3)}, ValueError, "sequence of 2 ints .* length 3"),
        ({"stride": 1.5}, TypeError, "`stride` must be an int or a sequence of 2"),
        ({"padding": "full"}, ValueError, "`padding` must be 'SAME'.*'full'"),
        ({"padding": (1, 2, 3)}, ValueError, "sequence of 2 ints or \\(low, high\\)"),
        ({"padding": [(1, 2), "x"]}, ValueError, "`padding` must be"),
        ({"padding_mode": "mirror"}, ValueError, "`padding_mode` must be one of"),
        ({"groups": 3}, ValueError, "must both be divisible by `groups` \\(3\\)"),
    ],
)
def test_bad_arguments(getkey, kwargs, error, match):
    args = {"in_channels": 2, "out_channels": 4, "kernel_size": 3} | kwargs
    with pytest.raises(error, match=match):
        enn.Conv2d(**args, key=getkey())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"stride": 2, "output_padding": 2}, "must be smaller than `stride`"),
        ({"padding_mode": "REFLECT"}, "`padding_mode` must be one of ZEROS, CIRCULAR"),
        ({"padding_mode": "CIRCULAR", "padding": 1}, "needs padding='SAME'"),
    ],
)
def test_bad_transpose_arguments(getkey, kwargs, match):
    with pytest.raises(ValueError, match=match):
        enn.ConvTranspose1d(2, 4, 3, **kwargs, key=getkey())


def test_mixed_dtypes(getkey):
    conv = enn.Conv1d(1, 1, 2, key=getkey())
    convt = enn.ConvTranspose1d(1, 1, 2, dtype=jnp.bfloat16, key=getkey())
    with pytest.raises(TypeError, match=r"float32 parameters, .* dtype bfloat16"):
        conv(jnp.ones((1, 4), jnp.bfloat16))
    with pytest.raises(TypeError, match=r"bfloat16 parameters, .*x\.astype"):
        convt(jnp.ones((1, 4)))


def test_valid_padding_input_smaller_than_kernel(getkey):
    conv = enn.Conv1d(1, 1, 3, padding="VALID", key=getkey())
    with pytest.raises(ValueError, match="padded to 2, which is smaller than the"):
        conv(jnp.ones((1, 2)))


def test_conv_transpose_padding_that_trims_everything(getkey):
    convt = enn.ConvTranspose1d(1, 1, 1, padding=1, key=getkey())
    with pytest.raises(
        ValueError, match=r"would have output size 0, because the padding \(1, 1\)"
    ):
        convt(jnp.ones((1, 2)))
    assert convt(jnp.ones((1, 3))).shape == (1, 1)
