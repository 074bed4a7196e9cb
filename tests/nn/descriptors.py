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
