"""One row per layer: how to build it and an example input.

Cross-cutting tests (`tests/nn/test_all_layers.py`) run jit / vmap / grad /
filter_eval_shape / dtype / serialise / shape-error checks over every row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """How to build and call one layer.

    - `name`: test id, e.g. `"Linear"`.
    - `make`: `make(key, dtype) -> layer`.
    - `inputs`: `inputs(key, dtype) -> tuple of positional args` for one example.
    - `stateful`: the layer takes and returns `state` (built with
      `make_with_state`); `call` then gets `(x, state)`.
    - `needs_key`: pass `key=` when calling (stochastic layers).
    - `wrong_input`: `wrong_input(key, dtype) -> args` with a wrong rank, and
      `wrong_match`: regex that the `ValueError` must match. `None` if the layer
      takes no array input.
    - `axis_name`: for layers that need a named vmap axis (BatchNorm).
    - `dtypes`: the floating dtypes the layer supports.
    """

    name: str
    make: Callable[[Any, Any], Any]
    inputs: Callable[[Any, Any], tuple]
    stateful: bool = False
    needs_key: bool = False
    wrong_input: Callable[[Any, Any], tuple] | None = None
    wrong_match: str | None = None
    axis_name: str | None = None
    dtypes: tuple[str, ...] = ("float32", "float64", "bfloat16")
    call: Callable[..., Any] | None = None


ROWS: list[Descriptor] = []

# -- core layers: Linear, Identity, MLP, Conv*, ConvTranspose*, pools, Embedding,
#    Dropout, Sequential, Lambda, PReLU --
import re  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402

import ecliptic.nn as enn  # noqa: E402


def _core_normal(*shape):
    return lambda key, dtype: (jr.normal(key, shape, dtype),)


def _vmap_match(got, expected):
    """The `wrong_match` for an input with one extra leading axis."""
    return (
        re.escape(f"expected `x` of shape {expected}, but got shape {got}.")
        + ".*"
        + re.escape("jax.vmap(layer)(x)")
    )


def _core(name, make, shape, wrong, expected, **kwargs):
    ROWS.append(
        Descriptor(
            name=name,
            make=make,
            inputs=_core_normal(*shape),
            wrong_input=None if wrong is None else _core_normal(*wrong),
            wrong_match=None if wrong is None else _vmap_match(wrong, expected),
            **kwargs,
        )
    )


_core("Linear", lambda k, d: enn.Linear(4, 3, dtype=d, key=k), (4,), (2, 4), "(4,)")
_core(
    "Linear[scalar]",
    lambda k, d: enn.Linear("scalar", "scalar", use_bias=False, dtype=d, key=k),
    (),
    (3,),
    "()",
)
_core("Identity", lambda k, d: enn.Identity(3, key=k), (3,), None, None)
_core("MLP", lambda k, d: enn.MLP(3, 2, 4, 2, dtype=d, key=k), (3,), (5, 3), "(3,)")
_core(
    "MLP[scan,PReLU]",
    lambda k, d: enn.MLP(
        3, "scalar", 4, 3, enn.PReLU(), jax.nn.tanh, dtype=d, scan=True, key=k
    ),
    (3,),
    (5, 3),
    "(3,)",
)
_core(
    "Conv1d",
    lambda k, d: enn.Conv1d(2, 3, 3, stride=2, padding=1, dtype=d, key=k),
    (2, 7),
    (4, 2, 7),
    "(2, ?)",
)
_core(
    "Conv2d[SAME,REFLECT,groups]",
    lambda k, d: enn.Conv2d(
        2, 4, 3, padding="SAME", groups=2, padding_mode="REFLECT", dtype=d, key=k
    ),
    (2, 5, 4),
    (3, 2, 5, 4),
    "(2, ?, ?)",
)
_core(
    "Conv3d",
    lambda k, d: enn.Conv3d(1, 2, 2, dilation=(1, 2, 1), dtype=d, key=k),
    (1, 3, 4, 3),
    (2, 1, 3, 4, 3),
    "(1, ?, ?, ?)",
)
_core(
    "ConvTranspose1d",
    lambda k, d: enn.ConvTranspose1d(2, 3, 3, 2, 1, 1, dtype=d, key=k),
    (2, 4),
    (5, 2, 4),
    "(2, ?)",
)
_core(
    "ConvTranspose2d[CIRCULAR]",
    lambda k, d: enn.ConvTranspose2d(
        2, 2, 3, padding="SAME", padding_mode="CIRCULAR", dtype=d, key=k
    ),
    (2, 4, 3),
    (2, 2, 4, 3),
    "(2, ?, ?)",
)
_core(
    "ConvTranspose3d",
    lambda k, d: enn.ConvTranspose3d(1, 2, 2, dtype=d, key=k),
    (1, 2, 3, 2),
    (2, 1, 2, 3, 2),
    "(1, ?, ?, ?)",
)
_core("AvgPool1d", lambda k, d: enn.AvgPool1d(2, 2), (2, 6), (3, 2, 6), "(channels, ?)")
_core(
    "MaxPool2d[ceil]",
    lambda k, d: enn.MaxPool2d(2, 2, use_ceil=True),
    (2, 5, 4),
    (3, 2, 5, 4),
    "(channels, ?, ?)",
)
_core(
    "AvgPool3d",
    lambda k, d: enn.AvgPool3d((2, 1, 2)),
    (1, 3, 2, 3),
    (2, 1, 3, 2, 3),
    "(channels, ?, ?, ?)",
)
_core(
    "AdaptiveMaxPool1d",
    lambda k, d: enn.AdaptiveMaxPool1d(3),
    (2, 7),
    (2, 2, 7),
    "(channels, ?)",
)
_core(
    "AdaptiveAvgPool2d",
    lambda k, d: enn.AdaptiveAvgPool2d((2, 3)),
    (2, 5, 4),
    (3, 2, 5, 4),
    "(channels, ?, ?)",
)
ROWS.append(
    Descriptor(
        name="Embedding",
        make=lambda k, d: enn.Embedding(6, 3, dtype=d, key=k),
        inputs=lambda k, d: (jr.randint(k, (), 0, 6),),
        wrong_input=lambda k, d: (jr.randint(k, (4,), 0, 6),),
        wrong_match=_vmap_match((4,), "()"),
    )
)
_core(
    "RotaryPositionalEmbedding",
    lambda k, d: enn.RotaryPositionalEmbedding(4, theta=500.0, dtype=d),
    (5, 4),
    (2, 5, 4),
    "(seq_length, 4)",
)
_core("Dropout", lambda k, d: enn.Dropout(0.5), (6,), None, None, needs_key=True)
_core("PReLU", lambda k, d: enn.PReLU(jnp.full((2, 1), 0.3, d)), (2, 3), None, None)
_core(
    "Sequential",
    lambda k, d: enn.Sequential(
        [enn.Linear(3, 4, dtype=d, key=k), enn.PReLU(), enn.Dropout(0.3)]
    ),
    (3,),
    (2, 3),
    "(3,)",
    needs_key=True,
)
_core(
    "Lambda",
    lambda k, d: enn.Lambda(jax.nn.softplus),
    (2, 3),
    None,
    None,
)


# -- normalisation, attention, rnn, stateful, shared, RoPE --


def _normal(*shapes):
    """`inputs(key, dtype)` drawing one standard-normal array per shape."""

    def inputs(key, dtype):
        import jax.random as jr

        keys = jr.split(key, len(shapes))
        return tuple(
            jr.normal(k, s, dtype=dtype) for k, s in zip(keys, shapes, strict=True)
        )

    return inputs


def _lstm_inputs(x_shape, hidden_size):
    def inputs(key, dtype):
        x, h, c = _normal(x_shape, (hidden_size,), (hidden_size,))(key, dtype)
        return (x, (h, c))

    return inputs


def _call_with_cloned_state(layer, *args, **kwargs):
    """Calls a stateful layer on a clone of its `state` (the last argument).

    `State.set` invalidates the State it was called on, so the cross-cutting tests,
    which call a layer several times with the same state, pass a clone each time.
    """
    import jax.tree_util as jtu

    *inputs, state = args
    return layer(*inputs, jtu.tree_map(lambda x: x, state), **kwargs)


def _call_attention_with_cache(layer, query, key_, value, state, **kwargs):
    """Calls an attention layer with a KV cache on a clone of its `state` (the
    last argument), passed as `state=`."""
    import jax.tree_util as jtu

    return layer(query, key_, value, state=jtu.tree_map(lambda x: x, state), **kwargs)


def _nn():
    import ecliptic.nn as nn

    return nn


ROWS += [
    Descriptor(
        name="LayerNorm",
        make=lambda key, dtype: _nn().LayerNorm((3, 4), dtype=dtype),
        inputs=_normal((3, 4)),
        wrong_input=_normal((2, 3, 4)),
        wrong_match=r"expected `x` of shape \(3, 4\), but got shape \(2, 3, 4\)",
    ),
    Descriptor(
        name="RMSNorm",
        make=lambda key, dtype: _nn().RMSNorm(4, dtype=dtype),
        inputs=_normal((4,)),
        wrong_input=_normal((5, 4)),
        wrong_match=r"expected `x` of shape \(4,\), but got shape \(5, 4\)",
    ),
    Descriptor(
        name="GroupNorm",
        make=lambda key, dtype: _nn().GroupNorm(2, 4, dtype=dtype),
        inputs=_normal((4, 3)),
        wrong_input=_normal((3, 4, 3)),
        wrong_match=r"Axis 0 must be channels=4, not 3",
    ),
    Descriptor(
        name="BatchNorm",
        make=lambda key, dtype: _nn().BatchNorm(3, "batch", mode="batch", dtype=dtype),
        inputs=_normal((3, 5)),
        stateful=True,
        call=_call_with_cloned_state,
        axis_name="batch",
        wrong_input=_normal((4, 5)),
        wrong_match=r"Axis 0 must be input_size=3, not 4",
    ),
    Descriptor(
        name="BatchNorm-ema",
        make=lambda key, dtype: _nn().BatchNorm(3, "batch", mode="ema", dtype=dtype),
        inputs=_normal((3,)),
        stateful=True,
        call=_call_with_cloned_state,
        axis_name="batch",
        wrong_input=_normal((2, 3)),
        wrong_match=r"Axis 0 must be input_size=3, not 2",
    ),
    Descriptor(
        name="MultiheadAttention",
        make=lambda key, dtype: _nn().MultiheadAttention(2, 8, dtype=dtype, key=key),
        inputs=_normal((4, 8), (6, 8), (6, 8)),
        wrong_input=_normal((2, 4, 8), (6, 8), (6, 8)),
        wrong_match=r"expected `query` of shape \(q_seq, 8\), but got shape "
        r"\(2, 4, 8\)",
    ),
    Descriptor(
        name="MultiheadAttention-dropout",
        make=lambda key, dtype: _nn().MultiheadAttention(
            2, 4, key_size=3, value_size=5, dropout_p=0.2, dtype=dtype, key=key
        ),
        inputs=_normal((4, 4), (6, 3), (6, 5)),
        needs_key=True,
        wrong_input=_normal((4, 4), (6, 3), (2, 6, 5)),
        wrong_match=r"expected `value` of shape \(6, 5\), but got shape \(2, 6, 5\)",
    ),
    Descriptor(
        name="MultiheadAttention-causal-gqa",
        make=lambda key, dtype: _nn().MultiheadAttention(
            4, 8, num_kv_heads=2, is_causal=True, dtype=dtype, key=key
        ),
        inputs=_normal((4, 8), (6, 8), (6, 8)),
        wrong_input=_normal((2, 4, 8), (6, 8), (6, 8)),
        wrong_match=r"expected `query` of shape \(q_seq, 8\), but got shape "
        r"\(2, 4, 8\)",
    ),
    Descriptor(
        name="MultiheadAttention-kv-cache",
        make=lambda key, dtype: _nn().MultiheadAttention(
            4, 8, num_kv_heads=1, is_causal=True, kv_cache_size=6, dtype=dtype, key=key
        ),
        inputs=_normal((4, 8), (4, 8), (4, 8)),
        stateful=True,
        call=_call_attention_with_cache,
        wrong_input=_normal((4, 8), (5, 8), (5, 8)),
        wrong_match=r"expected `key_` of shape \(4, 8\), but got shape \(5, 8\)",
    ),
    Descriptor(
        name="GRUCell",
        make=lambda key, dtype: _nn().GRUCell(3, 4, dtype=dtype, key=key),
        inputs=_normal((3,), (4,)),
        wrong_input=_normal((2, 3), (4,)),
        wrong_match=r"expected `input` of shape \(3,\), but got shape \(2, 3\)",
    ),
    Descriptor(
        name="LSTMCell",
        make=lambda key, dtype: _nn().LSTMCell(3, 4, dtype=dtype, key=key),
        inputs=_lstm_inputs((3,), 4),
        wrong_input=_lstm_inputs((2, 3), 4),
        wrong_match=r"expected `input` of shape \(3,\), but got shape \(2, 3\)",
    ),
    Descriptor(
        name="SpectralNorm",
        make=lambda key, dtype: _nn().SpectralNorm(
            _nn().Linear(4, 3, dtype=dtype, key=key), "weight", key=key
        ),
        inputs=_normal((4,)),
        stateful=True,
        call=_call_with_cloned_state,
        wrong_input=_normal((2, 4)),
        wrong_match=r"expected `x` of shape \(4,\)",
    ),
    Descriptor(
        name="WeightNorm",
        make=lambda key, dtype: _nn().WeightNorm(
            _nn().Linear(4, 3, dtype=dtype, key=key)
        ),
        inputs=_normal((4,)),
        wrong_input=_normal((2, 4)),
        wrong_match=r"expected `x` of shape \(4,\)",
    ),
    Descriptor(
        name="LoRA",
        make=lambda key, dtype: _nn().LoRA(
            _nn().Linear(4, 3, dtype=dtype, key=key), 2, key=key
        ),
        inputs=_normal((4,)),
        wrong_input=_normal((2, 4)),
        wrong_match=r"expected `x` of shape \(4,\)",
    ),
    Descriptor(
        name="RNN[GRUCell]",
        make=lambda key, dtype: _nn().RNN(_nn().GRUCell(3, 4, dtype=dtype, key=key)),
        inputs=_normal((5, 3)),
        wrong_input=_normal((2, 5, 3)),
        wrong_match=r"expected `xs` of shape \(length, 3\), but got shape \(2, 5, 3\)",
    ),
    Descriptor(
        name="RNN[LSTMCell,reverse,length]",
        make=lambda key, dtype: _nn().RNN(
            _nn().LSTMCell(3, 4, dtype=dtype, key=key), reverse=True
        ),
        inputs=_normal((5, 3)),
        call=lambda layer, xs, **kw: layer(xs, length=3, **kw),
        wrong_input=_normal((2, 5, 3)),
        wrong_match=r"expected `xs` of shape \(length, 3\), but got shape \(2, 5, 3\)",
    ),
    Descriptor(
        name="Bidirectional",
        make=lambda key, dtype: _nn().Bidirectional(
            _nn().RNN(_nn().GRUCell(3, 4, dtype=dtype, key=key)),
            _nn().RNN(
                _nn().LSTMCell(3, 2, dtype=dtype, key=jax.random.fold_in(key, 1)),
                reverse=True,
            ),
        ),
        inputs=_normal((5, 3)),
        wrong_input=_normal((2, 5, 3)),
        wrong_match=r"Bidirectional\(.*\) expected `xs` of shape \(length, 3\), but "
        r"got shape \(2, 5, 3\)",
    ),
    Descriptor(
        name="Stacked",
        make=lambda key, dtype: _nn().Stacked(
            lambda k: _nn().Sequential(
                [_nn().Linear(4, 4, dtype=dtype, key=k), _nn().Dropout(0.2)]
            ),
            3,
            key=key,
        ),
        inputs=_normal((4,)),
        needs_key=True,
        wrong_input=_normal((2, 4)),
        wrong_match=r"expected `x` of shape \(4,\), but got shape \(2, 4\)",
    ),
]
