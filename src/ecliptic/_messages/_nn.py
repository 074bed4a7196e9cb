"""Messages of the layers of `ecliptic.nn` other than shape and dtype wording (which
is in `_checks.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jax.dtypes import TypePromotionError

from .._checks import format_shape, UnboundAxisNameError
from ._checkpoints import describe_tree
from ._modules import strict_promotion_error


# ---------------------------------------------------------------------------------
# Shared argument checks (`nn/_misc.py`).
# ---------------------------------------------------------------------------------


def features_type_error(owner: str, name: str, value: Any) -> TypeError:
    """The error for an `int | "scalar"` size (e.g. `in_features`) that is neither."""
    return TypeError(
        f"{owner}: `{name}` must be a non-negative int or the string 'scalar', "
        f"but got {value!r} of type {type(value).__name__}."
    )


def features_value_error(owner: str, name: str, value: int) -> ValueError:
    """The error for a negative `int | "scalar"` size (e.g. `in_features`)."""
    return ValueError(
        f"{owner}: `{name}` must be a non-negative int or 'scalar', but got "
        f"{value}. Pass the size of the vector, e.g. `{name}=16`."
    )


def ntuple_length_error(owner: str, name: str, value: Any, n: int) -> ValueError:
    """The error for a per-spatial-axis argument (e.g. `kernel_size`) given as a
    sequence whose length is not the number of spatial axes `n`."""
    return ValueError(
        f"{owner}: `{name}` must be an int or a sequence of {n} ints (one "
        f"per spatial axis), but got {value!r} of length {len(value)}."
    )


def ntuple_type_error(owner: str, name: str, value: Any, n: int) -> TypeError:
    """The error for a per-spatial-axis argument that is neither an int nor a
    sequence."""
    return TypeError(
        f"{owner}: `{name}` must be an int or a sequence of {n} ints, but got "
        f"{value!r} of type {type(value).__name__}."
    )


def window_too_small_error(
    subject: str,
    shape: tuple[int, ...],
    axis: int,
    padded: int,
    window: int,
    *,
    convolution: bool,
) -> ValueError:
    """The error for an input whose padded spatial axis is smaller than the window
    of a convolution (`convolution=True`) or pooling layer.

    **Arguments:**

    - `subject`: the layer with its configuration.
    - `shape`: the input's shape, channels first.
    - `axis`: the spatial axis that is too small, counted from 0.
    - `padded`: its size once padded.
    - `window`: the (dilated) kernel size on that axis.
    - `convolution`: whether the layer is a convolution (else a pooling layer).
    """
    if convolution:
        what, fix = (
            "(dilated) kernel size",
            "Use a larger input, more padding, or padding='SAME'.",
        )
    else:
        what, fix = "kernel size", "Use a larger input or more padding."
    return ValueError(
        f"{subject} got `x` of shape {tuple(shape)}: spatial axis {axis + 1} "
        f"has size {shape[axis + 1]}, padded to {padded}, which is smaller than "
        f"the {what} {window}. {fix}"
    )


def weight_not_child_error(node: Any, name: str, names: list[str]) -> ValueError:
    """The error for a wrapper (`SpectralNorm`, `WeightNorm`) told to substitute an
    attribute `name` of `node` that is not among its pytree children `names`."""
    return ValueError(
        f"{type(node).__name__} expected `{name}` to be an array field (a pytree "
        f"child), but it is not among its children "
        f"{names}. Pass the "
        "name of an array field, e.g. `weight_name='weight'`."
    )


def weight_rank_error(
    subject: str, weight_name: str, min_ndim: int, weight: Any
) -> ValueError:
    """The error for a wrapped layer whose `weight_name` attribute is not an array
    with at least `min_ndim` axes."""
    got = (
        f"shape {tuple(weight.shape)}"
        if hasattr(weight, "shape")
        else f"an object of type {type(weight).__name__}"
    )
    return ValueError(
        f"{subject} expected `layer.{weight_name}` to be an array with at least "
        f"{min_ndim} axes, but got {got}. Pass the name of the layer's weight "
        "matrix, e.g. `weight_name='weight'`."
    )


def channels_first_hint() -> str:
    """The hint ending shape errors of layers that take `(channels, *spatial)`."""
    return "The input is `(channels, *spatial)`: map over batch axes with `jax.vmap`."


# ---------------------------------------------------------------------------------
# Attention.
# ---------------------------------------------------------------------------------


def attention_hint() -> str:
    """The hint ending the shape errors of `MultiheadAttention`."""
    return (
        "Layers act on a single example: map over the batch with "
        "`jax.vmap(mha)(query, key_, value)`."
    )


def attention_mask_shape_error(
    logits_shape: tuple[int, ...], mask_shape: tuple[int, ...]
) -> ValueError:
    """The error for a `mask` of `dot_product_attention_weights` whose shape is not
    `(q_seq, kv_seq)`."""
    return ValueError(
        "dot_product_attention_weights expected `mask` of shape (q_seq, "
        f"kv_seq) = {tuple(logits_shape)}, but got shape {tuple(mask_shape)}. "
        "Pass one mask per query position and key position."
    )


def process_heads_shape_error(
    subject: str, shapes: tuple[Any, ...], new_shapes: tuple[Any, ...]
) -> ValueError:
    """The error for a `process_heads` of `MultiheadAttention` that changed the
    shapes of the heads."""
    return ValueError(
        f"{subject} expected `process_heads` to keep the shapes of "
        f"the (query, key, value) heads, {shapes}, but it returned shapes "
        f"{new_shapes}. Return heads of the same shapes, e.g. apply a "
        "positional embedding per head with `jax.vmap(rope, in_axes=1, "
        "out_axes=1)`."
    )


# ---------------------------------------------------------------------------------
# BatchNorm.
# ---------------------------------------------------------------------------------


def batch_norm_default_mode_message() -> str:
    """The warning of a `BatchNorm` built without `mode`, which defaults to `"ema"`."""
    return (
        "ecliptic.nn.BatchNorm(..., mode=...) was not given, so it defaults to "
        "'ema' for compatibility with Equinox. New code should pass "
        "mode='batch' (PyTorch-like: batch statistics in training)."
    )


def batch_norm_mode_error(input_size: int, mode: Any) -> ValueError:
    """The error for a `BatchNorm` mode other than `"batch"` and `"ema"`."""
    return ValueError(
        f"ecliptic.nn.BatchNorm(input_size={input_size}) expected mode 'batch' "
        f"or 'ema', but got mode={mode!r}. Pass mode='batch'."
    )


def batch_norm_hint(axis_name: Any) -> str:
    """The hint ending the shape errors of `BatchNorm`, whose batch axis is named
    `axis_name`."""
    return (
        "The input is `(input_size, *spatial)` for one example: map over "
        f"the batch with `jax.vmap(bn, axis_name={axis_name!r}, "
        "in_axes=(0, None), out_axes=(0, None))(x, state)`."
    )


def batch_norm_unbound_axis_error(subject: str, name: Any) -> UnboundAxisNameError:
    """The error for a `BatchNorm` in training called where no mapped axis named
    `name` is bound (the caller raises it `from None`)."""
    return UnboundAxisNameError(
        f"{subject} expected to run under "
        f"`jax.vmap(..., axis_name={name!r})` (or `jax.pmap`), but no "
        f"mapped axis named {name!r} is bound here. In training, BatchNorm "
        "computes statistics over the batch, so call it as `jax.vmap(bn, "
        f"axis_name={name!r}, in_axes=(0, None), out_axes=(0, None))"
        "(x, state)`."
    )


# ---------------------------------------------------------------------------------
# Convolutions.
# ---------------------------------------------------------------------------------


def conv_padding_error(
    owner: str, padding: Any, n: int, *, per_axis: bool = True
) -> ValueError:
    """The error for a convolution's `padding` (for `n` spatial axes) that is none of
    the allowed forms; `per_axis=False` (an unknown string) leaves out "(one per
    spatial axis)"."""
    if not per_axis:
        return ValueError(
            f"{owner}: `padding` must be 'SAME', 'SAME_LOWER', 'VALID', an int, "
            f"or a sequence of {n} ints or (low, high) pairs, but got "
            f"{padding!r}."
        )
    return ValueError(
        f"{owner}: `padding` must be 'SAME', 'SAME_LOWER', 'VALID', an int, or a "
        f"sequence of {n} ints or (low, high) pairs (one per spatial axis), but got "
        f"{padding!r}."
    )


def conv_padding_mode_error(
    owner: str, mode: Any, allowed: Sequence[str]
) -> ValueError:
    """The error for a convolution's `padding_mode` not among `allowed`."""
    return ValueError(
        f"{owner}: `padding_mode` must be one of {', '.join(allowed)} "
        f"(case-insensitive), but got {mode!r}."
    )


def conv_groups_error(owner: str, c_in: int, c_out: int, groups: int) -> ValueError:
    """The error for a `groups` that does not divide both channel counts."""
    return ValueError(
        f"{owner}: `in_channels` ({c_in}) and `out_channels` ({c_out}) must both "
        f"be divisible by `groups` ({groups}). Choose a `groups` that divides "
        "both, e.g. groups=1."
    )


def conv_channels_last_hint() -> str:
    """The hint for a convolution's input that looks channels-last."""
    return (
        "Layers take channels first, (C, *spatial): convert a channels-last "
        "example with `jnp.moveaxis(x, -1, 0)`."
    )


def conv_output_padding_error(
    owner: str, output_padding: tuple[int, ...], stride: tuple[int, ...]
) -> ValueError:
    """The error for a `ConvTranspose` whose `output_padding` is not smaller than
    `stride` on every axis."""
    return ValueError(
        f"{owner}: `output_padding` must be smaller than `stride` on every "
        f"axis, but got output_padding={output_padding} and stride={stride}."
    )


def conv_circular_padding_error(
    owner: str, padding: Any, output_padding: tuple[int, ...]
) -> ValueError:
    """The error for a `ConvTranspose` with `padding_mode='CIRCULAR'` and padding
    other than `'SAME'`/`'SAME_LOWER'` or a nonzero `output_padding`."""
    return ValueError(
        f"{owner}: padding_mode='CIRCULAR' needs padding='SAME' or "
        f"'SAME_LOWER' and output_padding=0, but got padding={padding!r} "
        f"and output_padding={output_padding}."
    )


def conv_transpose_output_size_error(
    subject: str, shape: tuple[int, ...], axis: int, out: int, pad: Any, full: int
) -> ValueError:
    """The error for a `ConvTranspose` input whose padding would trim the output of
    spatial axis `axis` (counted from 0) to `out <= 0` entries, of `full`."""
    return ValueError(
        f"{subject} got `x` of shape {tuple(shape)}: spatial axis "
        f"{axis + 1} would have output size {out}, because the padding "
        f"{pad!r} trims more than the {full} entries that the transposed "
        "convolution produces. Use less padding or a larger input."
    )


# ---------------------------------------------------------------------------------
# Dropout.
# ---------------------------------------------------------------------------------


def dropout_probability_error(p: Any) -> ValueError:
    """The error for a `Dropout` probability outside `[0, 1]`."""
    return ValueError(
        f"ecliptic.nn.Dropout: `p` is the probability of dropping an entry, "
        f"so it must be in [0, 1], but got p={p}. Use e.g. `Dropout(p=0.1)`."
    )


def dropout_key_error(p: Any) -> RuntimeError:
    """The error for a `Dropout` in training mode called without a key."""
    return RuntimeError(
        f"ecliptic.nn.Dropout(p={p!r}) is in training mode and needs a "
        "random key, but got key=None. Pass one with `dropout(x, key=key)`, "
        "or switch it off with `dropout(x, inference=True)` or "
        "`ecliptic.nn.inference_mode(model)`."
    )


# ---------------------------------------------------------------------------------
# Embeddings.
# ---------------------------------------------------------------------------------


def embedding_arguments_error(
    num_embeddings: Any, embedding_size: Any, key: Any
) -> ValueError:
    """The error for an `Embedding` given neither all of the sizes and a key nor a
    `weight` table."""
    return ValueError(
        "ecliptic.nn.Embedding needs either `num_embeddings`, "
        "`embedding_size` and `key`, or a `weight` table, but got "
        f"num_embeddings={num_embeddings!r}, embedding_size="
        f"{embedding_size!r}, key={'None' if key is None else '...'}. "
        "Use `Embedding(num_embeddings=100, embedding_size=16, key=key)` "
        "or `Embedding(weight=table)`."
    )


def embedding_negative_size_error(name: str, n: int) -> ValueError:
    """The error for a negative `num_embeddings` or `embedding_size`."""
    return ValueError(
        f"ecliptic.nn.Embedding: `{name}` must not be negative, but got {name}={n}."
    )


def embedding_weight_shape_error(
    want: tuple[int | None, int | None], shape: tuple[int, ...]
) -> ValueError:
    """The error for an `Embedding` `weight` table that is not of shape `want`
    (`None`: any size)."""
    return ValueError(
        "ecliptic.nn.Embedding expected `weight` of shape "
        f"{format_shape(want)}, but got shape {format_shape(shape)}. "
        "The table has one row per embedding: pass an array of shape "
        "(num_embeddings, embedding_size), or leave out the sizes."
    )


def embedding_index_dtype_error(subject: str, dtype: Any) -> TypeError:
    """The error for an `Embedding` index that is not an integer."""
    return TypeError(
        f"{subject} expected an integer index `x`, but got dtype "
        f"{dtype}. "
        "Cast it with `x.astype(jnp.int32)`."
    )


def rope_size_error(embedding_size: int) -> ValueError:
    """The error for a `RotaryPositionalEmbedding` whose `embedding_size` is
    negative or odd."""
    return ValueError(
        "ecliptic.nn.RotaryPositionalEmbedding: `embedding_size` must be a "
        "non-negative even number (it rotates pairs of features), but got "
        f"embedding_size={embedding_size}."
    )


def rope_offset_error(subject: str, offset: Any) -> ValueError:
    """The error for a negative `offset` of a `RotaryPositionalEmbedding`."""
    return ValueError(
        f"{subject} got offset={offset}, but `offset` is the "
        "position of the first row and must be >= 0."
    )


def rope_strict_promotion_error(
    subject: str, own_dtype: Any, x_dtype: Any
) -> TypePromotionError:
    """The error for a `RotaryPositionalEmbedding` input whose dtype differs from the
    rotation tables' under strict dtype promotion (the caller raises it `from` JAX's).
    """
    return strict_promotion_error(subject, "rotation tables", own_dtype, x_dtype)


# ---------------------------------------------------------------------------------
# MLP, normalisation, pooling, RNN cells, Sequential, Shared, WeightNorm.
# ---------------------------------------------------------------------------------


def mlp_size_error(name: str, n: Any) -> ValueError:
    """The error for an `MLP` `width_size` or `depth` that is not a non-negative
    int."""
    return ValueError(
        f"ecliptic.nn.MLP: `{name}` must be a non-negative int, but got {name}={n!r}."
    )


def group_norm_divisibility_error(groups: int, channels: int) -> ValueError:
    """The error for a `GroupNorm` whose `groups` does not divide `channels`."""
    return ValueError(
        f"ecliptic.nn.GroupNorm(groups={groups}, channels={channels}) expected "
        f"`groups` to divide `channels`, but {channels} % {groups} = "
        f"{channels % groups}. Choose a number of groups that divides "
        f"{channels}."
    )


def group_norm_channels_error(groups: int) -> ValueError:
    """The error for a `GroupNorm` with `channelwise_affine=True` but no
    `channels`."""
    return ValueError(
        f"ecliptic.nn.GroupNorm(groups={groups}) expected `channels` when "
        "`channelwise_affine=True` (to size its weight and bias), but got "
        "channels=None. Pass `channels=...`, or `channelwise_affine=False`."
    )


def group_norm_input_error(
    subject: str, groups: int, shape: tuple[int, ...]
) -> ValueError:
    """The error for a `GroupNorm` input whose channels `groups` does not divide."""
    return ValueError(
        f"{subject} expected `x` whose axis 0 (channels) is divisible by "
        f"groups={groups}, but got shape {tuple(shape)}. {channels_first_hint()}"
    )


def pool_padding_error(owner: str, padding: Any, n: int) -> ValueError:
    """The error for a pooling layer's `padding` that is none of the allowed
    forms."""
    return ValueError(
        f"{owner}: `padding` must be an int, or a sequence of {n} ints or (low, high) "
        f"pairs (one per spatial axis), but got {padding!r}."
    )


def pool_padding_too_large_error(
    subject: str, pad: tuple[int, int], kernel: int, *, ceil: bool
) -> ValueError:
    """The error for a pooling padding `pad` larger than the kernel, given
    (`ceil=False`) or made by `use_ceil=True`."""
    what = "with use_ceil=True, the padding" if ceil else "`padding`"
    return ValueError(
        f"{subject}: {what} {pad} is larger than the kernel "
        f"size {kernel}, so some windows would hold only padding. Use padding "
        f"<= kernel_size."
    )


def adaptive_pool_target_error(owner: str, target_shape: tuple[int, ...]) -> ValueError:
    """The error for an adaptive pooling `target_shape` with an entry below 1."""
    return ValueError(
        f"{owner}: every entry of `target_shape` must be at least 1, but got "
        f"{target_shape}."
    )


def adaptive_pool_input_error(
    subject: str, shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> ValueError:
    """The error for an adaptive pooling input smaller than the target shape."""
    return ValueError(
        f"{subject} got `x` of shape {tuple(shape)}, but every "
        f"spatial size must be at least the target size {target_shape}. "
        "Use a smaller target_shape or a larger input."
    )


def rnn_scan_hint() -> str:
    """The hint ending the shape errors of the RNN cells."""
    return (
        "A cell takes one time step of one example: scan over time with "
        "`jax.lax.scan` and map over the batch with `jax.vmap(cell)(input, hidden)`."
    )


def lstm_hidden_error(subject: str, hidden: Any) -> TypeError:
    """The error for an `LSTMCell` `hidden` that is not a pair `(h, c)`."""
    return TypeError(
        f"{subject} expected `hidden` to be a pair `(h, c)` of arrays, but "
        f"got an object of type {type(hidden).__name__}. Pass "
        "`(jnp.zeros(hidden_size), jnp.zeros(hidden_size))` to start."
    )


def sequential_index_error(i: Any) -> TypeError:
    """The error for indexing a `Sequential` with neither an int nor a slice (the
    caller raises it `from None`)."""
    return TypeError(
        "ecliptic.nn.Sequential expected an int or a slice as index, but got "
        f"an object of type {type(i).__name__}. Use e.g. `seq[0]` or "
        "`seq[1:]`."
    )


def shared_structure_error(source: Any, dest: Any) -> ValueError:
    """The error for a `Shared` whose `get(pytree)` (`source`) and `where(pytree)`
    (`dest`) differ in structure, shapes or dtypes."""
    return ValueError(
        "ecliptic.nn.Shared expected `get(pytree)` and `where(pytree)` to have "
        "the same pytree structure, shapes and dtypes, but got "
        f"get(pytree) = {describe_tree(source)} and where(pytree) = "
        f"{describe_tree(dest)}. Make `get` "
        "return a value shaped like the node it replaces (transpose or "
        "reshape it inside `get` if needed)."
    )


def weight_norm_axis_error(subject: str, weight: Any, axis: int) -> ValueError:
    """The error for a `WeightNorm` `axis` out of range for the weight."""
    return ValueError(
        f"{subject} expected `axis` in [-{weight.ndim}, {weight.ndim}) for a "
        f"weight of shape {tuple(weight.shape)}, but got axis={axis}. Pass "
        "axis=0 (one norm per output feature) or axis=None."
    )


# ---------------------------------------------------------------------------------
# State.
# ---------------------------------------------------------------------------------


def state_index_init_error(init: Any) -> ValueError:
    """The error for a `StateIndex` given a function instead of an initial value."""
    return ValueError(
        "ecliptic.nn.StateIndex(init) expected the initial value of the state "
        f"(a pytree of arrays), but got the function {init!r}. Pass the value "
        "itself, e.g. `StateIndex(jnp.zeros(3))`, not a function that makes it."
    )


def state_index_type_error(method: str, item: Any) -> TypeError:
    """The error for `State.{method}` given something other than a `StateIndex`."""
    return TypeError(
        f"ecliptic.nn.State.{method} expected an `ecliptic.nn.StateIndex`, but "
        f"got an object of type {type(item).__name__}. Pass the layer's "
        "StateIndex field, e.g. `state.get(self.index)`."
    )


def state_deleted_init_error() -> ValueError:
    """The error for `State(model)` on a model whose initial states were deleted."""
    return ValueError(
        "ecliptic.nn.State(model) expected a model that still holds "
        "its initial states, but the model's initial states were "
        "already deleted (by `make_with_state` or "
        "`delete_init_state`). Build model and state together with "
        "`model, state = ecliptic.nn.make_with_state(Model)(...)`."
    )


def stale_state_error() -> ValueError:
    """The error for using a `State` after `set` or `update` invalidated it."""
    return ValueError(
        "ecliptic.nn.State: this State is out of date. `state.set(...)` and "
        "`state.update(...)` return a new State and invalidate the one they were "
        "called on. Use the State they returned, e.g. `x, state = layer(x, state)`, "
        "then pass that `state` on. To keep an old State on purpose, clone it first: "
        "`state_copy = jax.tree_util.tree_map(lambda x: x, state)`."
    )


def state_set_structure_error(old: Any, value: Any) -> ValueError:
    """The error for `State.set` with a value unlike the old one in structure,
    shapes or dtypes."""
    return ValueError(
        "ecliptic.nn.State.set expected a new value with the same pytree "
        "structure, shapes and dtypes as the old value "
        f"(structure {describe_tree(old)}), but got structure "
        f"{describe_tree(value)}. "
        "Cast or reshape the new value to match, e.g. "
        "`value.astype(old.dtype)`."
    )


def state_update_type_error(substate: Any) -> TypeError:
    """The error for `State.update` given something other than a `State`."""
    return TypeError(
        "ecliptic.nn.State.update expected an `ecliptic.nn.State`, but got "
        f"an object of type {type(substate).__name__}. Pass a State made by "
        "`state.substate(submodel)`."
    )


def state_update_keys_error(num_keys: int, extra: Sequence[Any]) -> ValueError:
    """The error for `State.update` with a substate holding keys (`extra`) that this
    State, of `num_keys` keys, does not."""
    return ValueError(
        "ecliptic.nn.State.update expected a substate whose keys are a subset "
        f"of this State's {num_keys} keys, but got {len(extra)} unknown "
        f"key(s), e.g. {extra[0]!r}. Build the substate with "
        "`state.substate(submodel)` from this State."
    )
