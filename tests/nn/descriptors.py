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
        axis_name="batch",
        wrong_input=_normal((4, 5)),
        wrong_match=r"Axis 0 must be input_size=3, not 4",
    ),
    Descriptor(
        name="BatchNorm-ema",
        make=lambda key, dtype: _nn().BatchNorm(3, "batch", mode="ema", dtype=dtype),
        inputs=_normal((3,)),
        stateful=True,
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
]
