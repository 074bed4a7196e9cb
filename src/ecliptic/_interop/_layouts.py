"""The PyTorch layout of each `ecliptic.nn` layer: one table, keyed by layer type.

A `Layout` says, for one layer type, which tensors its `torch.nn` counterpart has
(names relative to the layer, e.g. `"weight"`, `"out_proj.bias"`) and how to convert
both ways, exactly:

- `export(layer, state)` -> `{torch_name: numpy array}` in PyTorch's layout;
- `load(layer, state, tensors)` -> `(layer, state)`, given a *complete* set of
  tensors in PyTorch's layout (the caller overlays the incoming tensors on the
  layer's own export, so a partial load converts exactly too);
- `check(layer)` -> `None`, or the kind of reason (a key of the messages'
  `_UNSUPPORTED`) why this particular layer has no PyTorch layout.

`LAYOUTS` is the table; `REFUSED` lists the layers that never have one. Lookups
follow the class's MRO, so `Conv2d` finds `Conv`'s row. A new layer's row goes here
(see `README.md`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import nn
from .._tree_at import tree_at


Tensors = dict[str, np.ndarray]
Export = Callable[[Any, Any], Tensors]
Load = Callable[[Any, Any, Tensors], tuple[Any, Any]]


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one layer type converts to and from its `torch.nn` counterpart."""

    torch: str
    export: Export
    load: Load
    check: Callable[[Any], str | None] = lambda layer: None
    needs_state: Callable[[Any], bool] = lambda layer: False


def _np(x: Any) -> np.ndarray:
    return np.array(x)


def _set(layer: Any, values: dict[str, Any]) -> Any:
    """`layer` with the attributes (dotted names allowed) set to JAX arrays."""
    if not values:
        return layer
    names = list(values)

    def where(m: Any) -> list[Any]:
        out = []
        for name in names:
            node = m
            for part in name.split("."):
                node = getattr(node, part)
            out.append(node)
        return out

    return tree_at(where, layer, [jnp.asarray(values[n]) for n in names])


def _plain(fields: dict[str, str], reshape_bias: bool = False) -> Layout:
    """A layer whose torch tensors are its own arrays (`torch name: field`), same
    layout; with `reshape_bias`, ecliptic's bias `(out, 1, ..., 1)` is torch's
    `(out,)`."""

    def export(layer: Any, state: Any) -> Tensors:
        out = {}
        for tname, field in fields.items():
            value = getattr(layer, field)
            if value is not None:
                value = _np(value)
                if reshape_bias and field == "bias":
                    value = value.reshape(-1)
                out[tname] = value
        return out

    def load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
        values = {}
        for tname, field in fields.items():
            if tname in tensors:
                own = getattr(layer, field)
                values[field] = tensors[tname].reshape(own.shape)
        return _set(layer, values), state

    return Layout(torch="", export=export, load=load)


# -- ConvTranspose: torch stores (in, out/groups, *k) and correlates with the kernel
# as it is; ecliptic stores (out, in/groups, *k) and runs a convolution of the
# dilated input, so the kernel is flipped along every spatial axis. --


def _conv_t_to_torch(weight: np.ndarray, groups: int) -> np.ndarray:
    out, in_g, *k = weight.shape
    w = np.flip(weight, axis=tuple(range(2, weight.ndim)))
    w = w.reshape(groups, out // groups, in_g, *k).swapaxes(1, 2)
    return np.ascontiguousarray(w.reshape(groups * in_g, out // groups, *k))


def _conv_t_from_torch(weight: np.ndarray, groups: int) -> np.ndarray:
    in_, out_g, *k = weight.shape
    w = weight.reshape(groups, in_ // groups, out_g, *k).swapaxes(1, 2)
    w = w.reshape(groups * out_g, in_ // groups, *k)
    return np.ascontiguousarray(np.flip(w, axis=tuple(range(2, w.ndim))))


def _conv_t_export(layer: Any, state: Any) -> Tensors:
    out = {"weight": _conv_t_to_torch(_np(layer.weight), layer.groups)}
    if layer.bias is not None:
        out["bias"] = _np(layer.bias).reshape(-1)
    return out


def _conv_t_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    values: dict[str, Any] = {
        "weight": _conv_t_from_torch(tensors["weight"], layer.groups)
    }
    if layer.bias is not None:
        values["bias"] = tensors["bias"].reshape(layer.bias.shape)
    return _set(layer, values), state


# -- PReLU: torch's `weight` is `(num_parameters,)`; ecliptic's `negative_slope`
# has any shape that broadcasts against the input (`()`, or `(channels, 1, 1)`). --


def _prelu_export(layer: Any, state: Any) -> Tensors:
    return {"weight": _np(layer.negative_slope).reshape(-1)}


def _prelu_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    own = layer.negative_slope
    return _set(layer, {"negative_slope": tensors["weight"].reshape(own.shape)}), state


# -- GRUCell: the same gate order (r, z, n) and weights. torch has two biases of
# `3h`; ecliptic adds `bias` to the input gates and `bias_n` to the hidden part of
# the n gate (inside the reset), so `bias = bias_ih + (bias_hh_r, bias_hh_z, 0)` and
# `bias_n = bias_hh_n`; exported as `bias_ih = bias`, `bias_hh = (0, 0, bias_n)`. --


def _gru_export(layer: Any, state: Any) -> Tensors:
    out = {"weight_ih": _np(layer.weight_ih), "weight_hh": _np(layer.weight_hh)}
    if layer.bias is not None:
        bias_n = _np(layer.bias_n)
        zeros = np.zeros((2 * layer.hidden_size,), bias_n.dtype)
        out["bias_ih"] = _np(layer.bias)
        out["bias_hh"] = np.concatenate([zeros, bias_n])
    return out


def _gru_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    values: dict[str, Any] = {
        "weight_ih": tensors["weight_ih"],
        "weight_hh": tensors["weight_hh"],
    }
    if layer.bias is not None:
        h2 = 2 * layer.hidden_size
        hh = tensors["bias_hh"]
        bias = tensors["bias_ih"].copy()
        bias[:h2] = bias[:h2] + hh[:h2]
        values["bias"] = bias
        values["bias_n"] = hh[h2:]
    return _set(layer, values), state


# -- LSTMCell: the same gate order (i, f, g, o); torch's two biases add up to
# ecliptic's one, which is exported as `bias_ih` with `bias_hh = 0`. --


def _lstm_export(layer: Any, state: Any) -> Tensors:
    out = {"weight_ih": _np(layer.weight_ih), "weight_hh": _np(layer.weight_hh)}
    if layer.bias is not None:
        bias = _np(layer.bias)
        out["bias_ih"] = bias
        out["bias_hh"] = np.zeros_like(bias)
    return out


def _lstm_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    values: dict[str, Any] = {
        "weight_ih": tensors["weight_ih"],
        "weight_hh": tensors["weight_hh"],
    }
    if layer.bias is not None:
        values["bias"] = tensors["bias_ih"] + tensors["bias_hh"]
    return _set(layer, values), state


# -- MultiheadAttention: torch packs the q, k, v projections into `in_proj_weight`
# `(3E, E)` when the key and value sizes are E (else `q_proj_weight`,
# `k_proj_weight`, `v_proj_weight`), their biases into `in_proj_bias` `(3E,)`, and
# the output projection is `out_proj`. Heads split the same way. --

_PROJS = ("query_proj", "key_proj", "value_proj")
_SEPARATE = ("q_proj_weight", "k_proj_weight", "v_proj_weight")


def _mha_check(layer: Any) -> str | None:
    if layer.num_kv_heads != layer.num_heads:
        return "mha_heads"
    e = layer.query_size
    if not (layer.qk_size == layer.vo_size and layer.num_heads * layer.qk_size == e):
        return "mha_sizes"
    if layer.output_size != e:
        return "mha_sizes"
    flags = {
        layer.use_query_bias,
        layer.use_key_bias,
        layer.use_value_bias,
        layer.use_output_bias,
    }
    return "mha_bias" if len(flags) > 1 else None


def _packed(layer: Any) -> bool:
    return layer.key_size == layer.query_size == layer.value_size


def _mha_export(layer: Any, state: Any) -> Tensors:
    projs = [getattr(layer, p) for p in _PROJS]
    out: Tensors = {}
    if _packed(layer):
        out["in_proj_weight"] = np.concatenate([_np(p.weight) for p in projs])
    else:
        for name, p in zip(_SEPARATE, projs, strict=True):
            out[name] = _np(p.weight)
    if layer.use_query_bias:
        out["in_proj_bias"] = np.concatenate([_np(p.bias) for p in projs])
    out["out_proj.weight"] = _np(layer.output_proj.weight)
    if layer.use_output_bias:
        out["out_proj.bias"] = _np(layer.output_proj.bias)
    return out


def _mha_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    values: dict[str, Any] = {"output_proj.weight": tensors["out_proj.weight"]}
    if _packed(layer):
        for proj, w in zip(_PROJS, np.split(tensors["in_proj_weight"], 3)):
            values[f"{proj}.weight"] = w
    else:
        for proj, name in zip(_PROJS, _SEPARATE, strict=True):
            values[f"{proj}.weight"] = tensors[name]
    if layer.use_query_bias:
        for proj, b in zip(_PROJS, np.split(tensors["in_proj_bias"], 3)):
            values[f"{proj}.bias"] = b
    if layer.use_output_bias:
        values["output_proj.bias"] = tensors["out_proj.bias"]
    return _set(layer, values), state


# -- BatchNorm: weight and bias as torch; the running statistics live in the
# `State`. `mode="ema"` keeps them as they are (no count: exported as
# `num_batches_tracked = 0`). `mode="batch"` keeps a debiased moving average
# `hidden / (1 - momentum**count)`: exported as `running = hidden / (1 - m**n)`,
# loaded as `hidden = running * (1 - m**n)` with `count = n = num_batches_tracked`
# (`n = 0`: `hidden = running`), so inference uses torch's running statistics. --


def _bn_export(layer: Any, state: Any) -> Tensors:
    out: Tensors = {}
    if layer.weight is not None:
        out["weight"] = _np(layer.weight)
        out["bias"] = _np(layer.bias)
    if layer.mode == "ema":
        mean, var = (_np(v) for v in state.get(layer.ema_state_index))
        if bool(state.get(layer.ema_first_time_index)):  # never trained: torch's
            mean, var = np.zeros_like(mean), np.ones_like(var)  # fresh values
        count = 0
    else:
        hidden_mean, hidden_var = (_np(v) for v in state.get(layer.batch_state_index))
        count = int(state.get(layer.batch_counter))
        scale = 1.0 if count == 0 else 1.0 - layer.momentum**count
        mean = (hidden_mean.astype(np.float64) / scale).astype(hidden_mean.dtype)
        var = (hidden_var.astype(np.float64) / scale).astype(hidden_var.dtype)
    out["running_mean"] = mean
    out["running_var"] = var
    out["num_batches_tracked"] = np.array(count, np.int64)
    return out


def _bn_load(layer: Any, state: Any, tensors: Tensors) -> tuple[Any, Any]:
    values = {}
    if layer.weight is not None:
        values = {"weight": tensors["weight"], "bias": tensors["bias"]}
    mean, var = tensors["running_mean"], tensors["running_var"]
    if layer.mode == "ema":
        state = state.set(layer.ema_state_index, (jnp.asarray(mean), jnp.asarray(var)))
        state = state.set(layer.ema_first_time_index, jnp.array(False))
    else:
        count = int(tensors["num_batches_tracked"])
        scale = 1.0 if count == 0 else 1.0 - layer.momentum**count
        hidden = [(v.astype(np.float64) * scale).astype(v.dtype) for v in (mean, var)]
        state = state.set(layer.batch_state_index, tuple(map(jnp.asarray, hidden)))
        old = state.get(layer.batch_counter)
        state = state.set(layer.batch_counter, jnp.asarray(count, old.dtype))
    return _set(layer, values), state


def _refuse_mlp(layer: Any) -> str | None:
    return "mlp_scan" if layer.scan else None


_WEIGHT_BIAS = {"weight": "weight", "bias": "bias"}

LAYOUTS: dict[type, Layout] = {
    nn.Linear: dataclasses.replace(_plain(_WEIGHT_BIAS), torch="torch.nn.Linear"),
    nn.Conv: dataclasses.replace(
        _plain(_WEIGHT_BIAS, reshape_bias=True), torch="torch.nn.ConvNd"
    ),
    nn.ConvTranspose: Layout(
        torch="torch.nn.ConvTransposeNd", export=_conv_t_export, load=_conv_t_load
    ),
    nn.Embedding: dataclasses.replace(
        _plain({"weight": "weight"}), torch="torch.nn.Embedding"
    ),
    nn.LayerNorm: dataclasses.replace(_plain(_WEIGHT_BIAS), torch="torch.nn.LayerNorm"),
    nn.RMSNorm: dataclasses.replace(_plain(_WEIGHT_BIAS), torch="torch.nn.RMSNorm"),
    nn.GroupNorm: dataclasses.replace(_plain(_WEIGHT_BIAS), torch="torch.nn.GroupNorm"),
    nn.BatchNorm: Layout(
        torch="torch.nn.BatchNormNd",
        export=_bn_export,
        load=_bn_load,
        needs_state=lambda layer: True,
    ),
    nn.PReLU: Layout(torch="torch.nn.PReLU", export=_prelu_export, load=_prelu_load),
    nn.GRUCell: Layout(torch="torch.nn.GRUCell", export=_gru_export, load=_gru_load),
    nn.LSTMCell: Layout(
        torch="torch.nn.LSTMCell", export=_lstm_export, load=_lstm_load
    ),
    nn.MultiheadAttention: Layout(
        torch="torch.nn.MultiheadAttention",
        export=_mha_export,
        load=_mha_load,
        check=_mha_check,
    ),
}

# Layers that never have a PyTorch layout (or only in some configurations): the
# function returns the kind of reason, or `None` when this one converts by the
# default naming.
REFUSED: dict[type, Callable[[Any], str | None]] = {
    nn.LoRA: lambda layer: "lora",
    nn.Stacked: lambda layer: "stacked",
    nn.MLP: _refuse_mlp,
    nn.SpectralNorm: lambda layer: "weight_wrapper",
    nn.WeightNorm: lambda layer: "weight_wrapper",
    nn.Shared: lambda layer: "shared",
}


def layout_for(node: Any) -> Layout | None:
    """The layout of `node`'s type (following its MRO), or `None`."""
    for cls in type(node).__mro__:
        layout = LAYOUTS.get(cls)
        if layout is not None:
            return layout
    return None


def refusal(node: Any) -> str | None:
    """The kind of reason why `node` has no PyTorch layout, or `None`."""
    for cls in type(node).__mro__:
        refuse = REFUSED.get(cls)
        if refuse is not None:
            return refuse(node)
    layout = layout_for(node)
    return None if layout is None else layout.check(node)
