"""The ecliptic side of each PyTorch fixture: how to build the equivalent model and
run it on the fixture's inputs. Shared by `make_fixtures.py` (which builds the
`torch.nn` side, and checks the reverse direction) and the tests.

A fixture `fixtures/<name>.safetensors` holds the torch module's state dict under
its own names, and the inputs and torch's outputs under `io.<name>` (see
`IO_PREFIX`; the tests drop those with a `rename` function).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import safetensors.numpy

import ecliptic as eqx


FIXTURES = pathlib.Path(__file__).parent / "fixtures"
IO_PREFIX = "io."


def drop_io(name: str) -> str | None:
    """A `rename` function that drops the fixture's inputs and outputs."""
    return None if name.startswith(IO_PREFIX) else name


def file_rename(rules: Any) -> Callable[[str], str | None]:
    """A `rename` function for a whole fixture file: drops the inputs and outputs,
    then applies the `(pattern, replacement)` rules in order."""
    compiled = [(re.compile(p), r) for p, r in (rules or [])]

    def rename(name: str) -> str | None:
        if name.startswith(IO_PREFIX):
            return None
        for pattern, replacement in compiled:
            name = pattern.sub(replacement, name)
        return name

    return rename


def build(make: Callable[..., Any], *args: Any, seed: int = 0, **kwargs: Any) -> Any:
    """`make(*args, **kwargs)` with random values, without running its
    initialisation (which compiles every random draw): the structure comes from
    `ecliptic.filter_eval_shape`, the values from NumPy."""
    rng = np.random.default_rng(seed)

    def fill(x: Any) -> Any:
        if not isinstance(x, jax.ShapeDtypeStruct):
            return x
        if jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(rng.standard_normal(x.shape).astype(x.dtype))
        return jnp.asarray(np.zeros(x.shape, x.dtype))

    tree = eqx.filter_eval_shape(make, *args, **kwargs)
    return jax.tree.map(
        fill, tree, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct)
    )


def read_fixture(name: str) -> tuple[dict, dict, dict]:
    """`(weights, inputs, outputs)` of a fixture, as NumPy arrays."""
    tensors = safetensors.numpy.load_file(str(FIXTURES / f"{name}.safetensors"))
    weights = {k: v for k, v in tensors.items() if not k.startswith(IO_PREFIX)}
    io = {k[len(IO_PREFIX) :]: v for k, v in tensors.items() if k.startswith(IO_PREFIX)}
    outputs = {k[4:]: v for k, v in io.items() if k.startswith("out.")}
    inputs = {k: v for k, v in io.items() if not k.startswith("out.")}
    return weights, inputs, outputs


@dataclasses.dataclass(frozen=True)
class Case:
    """`make(key) -> (model, state or None)`; `run(model, state, inputs) ->
    {output name: array}`; `rename`: torch names -> ecliptic names (for loading);
    `rename_out`: ecliptic names -> torch names (for `state_dict`)."""

    make: Callable[[Any], tuple[Any, Any]]
    run: Callable[[Any, Any, dict[str, np.ndarray]], dict[str, Any]]
    rename: Any = None
    rename_out: Any = None


def _plain(make: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, Any]]:
    return lambda key: (make(key), None)


def _vmapped(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    return {"y": jax.vmap(model)(jnp.asarray(inputs["x"]))}


def _embedding(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    return {"y": jax.vmap(model)(jnp.asarray(inputs["x"]).astype(jnp.int32))}


def _recurrent(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    """A cell over the steps of `x` `(steps, batch, in)`; the hidden state
    after each step, `(steps, batch, hidden)`."""
    xs = jnp.asarray(inputs["x"])
    hidden: Any = jnp.asarray(inputs["h0"])
    lstm = "c0" in inputs
    if lstm:
        hidden = (hidden, jnp.asarray(inputs["c0"]))
    step = jax.vmap(model)
    hs, cs = [], []
    for x in xs:
        hidden = step(x, hidden)
        hs.append(hidden[0] if lstm else hidden)
        if lstm:
            cs.append(hidden[1])
    out = {"y": jnp.stack(hs)}
    if lstm:
        out["c"] = jnp.stack(cs)
    return out


def _mha(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    q, k, v = (jnp.asarray(inputs[n][0]) for n in ("q", "k", "v"))
    return {"y": model(q, k, v)[None]}


def _batch_norm(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    call = jax.vmap(model, in_axes=(0, None), out_axes=(0, None), axis_name="batch")
    return {"y": call(jnp.asarray(inputs["x"]), state)[0]}


def _bn(channels: int, mode: str = "batch") -> Callable[[Any], tuple[Any, Any]]:
    def make(key: Any) -> tuple[Any, Any]:
        del key
        return eqx.nn.make_with_state(eqx.nn.BatchNorm)(
            channels, "batch", inference=True, mode=mode, momentum=0.9
        )

    return make


# -- the two whole models --


def _relu(x: Any, *, key: Any = None) -> Any:
    return jax.nn.relu(x)


def _flatten(x: Any, *, key: Any = None) -> Any:
    return jnp.reshape(x, (-1,))


def _make_cnn(key: Any) -> tuple[Any, Any]:
    """torch: Sequential(Conv2d(1, 4, 3, padding=1), BatchNorm2d(4), ReLU(),
    MaxPool2d(2), Conv2d(4, 6, 3), ReLU(), Flatten(), Linear(24, 5))."""
    k1, k2, k3 = jr.split(key, 3)

    def make() -> Any:
        return eqx.nn.Sequential(
            [
                eqx.nn.Conv2d(1, 4, 3, padding=1, key=k1),
                eqx.nn.BatchNorm(4, "batch", inference=True, mode="batch"),
                eqx.nn.Lambda(_relu),
                eqx.nn.MaxPool2d(2, stride=2),
                eqx.nn.Conv2d(4, 6, 3, key=k2),
                eqx.nn.Lambda(_relu),
                eqx.nn.Lambda(_flatten),
                eqx.nn.Linear(24, 5, key=k3),
            ]
        )

    return eqx.nn.make_with_state(make)()


def _cnn(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    def one(x: Any) -> Any:
        return model(x, state)[0]

    return {"y": jax.vmap(one, axis_name="batch")(jnp.asarray(inputs["x"]))}


class EncoderBlock(eqx.Module):
    """A post-norm transformer encoder block (torch's `TransformerEncoderLayer`
    with `norm_first=False`, ReLU, no dropout), with ecliptic's own names."""

    attention: eqx.nn.MultiheadAttention
    ff_in: eqx.nn.Linear
    ff_out: eqx.nn.Linear
    ln_attention: eqx.nn.LayerNorm
    ln_ff: eqx.nn.LayerNorm

    def __init__(self, size: int, heads: int, hidden: int, *, key: Any):
        k1, k2, k3 = jr.split(key, 3)
        bias = dict(
            use_query_bias=True,
            use_key_bias=True,
            use_value_bias=True,
            use_output_bias=True,
        )
        self.attention = eqx.nn.MultiheadAttention(heads, size, **bias, key=k1)
        self.ff_in = eqx.nn.Linear(size, hidden, key=k2)
        self.ff_out = eqx.nn.Linear(hidden, size, key=k3)
        self.ln_attention = eqx.nn.LayerNorm(size)
        self.ln_ff = eqx.nn.LayerNorm(size)

    def __call__(self, x: Any) -> Any:
        x = jax.vmap(self.ln_attention)(x + self.attention(x, x, x))
        ff = jax.vmap(lambda t: self.ff_out(jax.nn.relu(self.ff_in(t))))(x)
        return jax.vmap(self.ln_ff)(x + ff)


# torch's names -> ecliptic's, and back.
_ENCODER_NAMES = [
    ("self_attn", "attention"),
    ("linear1", "ff_in"),
    ("linear2", "ff_out"),
    ("norm1", "ln_attention"),
    ("norm2", "ln_ff"),
]
ENCODER_RENAME = [(rf"^{t}\.", f"{e}.") for t, e in _ENCODER_NAMES]
ENCODER_RENAME_OUT = [(rf"^{e}\.", f"{t}.") for t, e in _ENCODER_NAMES]


def _encoder(model: Any, state: Any, inputs: dict[str, np.ndarray]) -> dict:
    return {"y": model(jnp.asarray(inputs["x"][0]))[None]}


def _mha_layer(**kwargs: Any) -> Callable[[Any], Any]:
    bias = dict(
        use_query_bias=True,
        use_key_bias=True,
        use_value_bias=True,
        use_output_bias=True,
    )
    return lambda key: eqx.nn.MultiheadAttention(2, 8, **kwargs, **bias, key=key)


C = eqx.nn
CASES: dict[str, Case] = {
    "linear": Case(_plain(lambda k: C.Linear(4, 3, key=k)), _vmapped),
    "conv1d": Case(
        _plain(lambda k: C.Conv1d(2, 3, 3, stride=2, padding=1, key=k)), _vmapped
    ),
    "conv2d": Case(
        _plain(lambda k: C.Conv2d(2, 4, 3, padding=1, groups=2, key=k)), _vmapped
    ),
    "conv3d": Case(_plain(lambda k: C.Conv3d(2, 2, (2, 3, 2), key=k)), _vmapped),
    "conv_transpose1d": Case(
        _plain(
            lambda k: C.ConvTranspose1d(
                2, 3, 3, stride=2, padding=1, output_padding=1, key=k
            )
        ),
        _vmapped,
    ),
    "conv_transpose2d": Case(
        _plain(
            lambda k: C.ConvTranspose2d(
                4, 2, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2, key=k
            )
        ),
        _vmapped,
    ),
    "conv_transpose3d": Case(
        _plain(lambda k: C.ConvTranspose3d(2, 3, 2, stride=2, key=k)), _vmapped
    ),
    "embedding": Case(_plain(lambda k: C.Embedding(10, 4, key=k)), _embedding),
    "layer_norm": Case(_plain(lambda k: C.LayerNorm(6)), _vmapped),
    "group_norm": Case(_plain(lambda k: C.GroupNorm(2, 4)), _vmapped),
    "rms_norm": Case(
        _plain(lambda k: C.RMSNorm(6, eps=1e-6, use_bias=False)), _vmapped
    ),
    "batch_norm1d": Case(_bn(3), _batch_norm),
    "batch_norm2d": Case(_bn(2), _batch_norm),
    "prelu": Case(_plain(lambda k: C.PReLU(jnp.full((3, 1), 0.25))), _vmapped),
    "gru_cell": Case(_plain(lambda k: C.GRUCell(3, 4, key=k)), _recurrent),
    "lstm_cell": Case(_plain(lambda k: C.LSTMCell(3, 4, key=k)), _recurrent),
    "multihead_attention": Case(_plain(_mha_layer()), _mha),
    "multihead_attention_kdim": Case(
        _plain(_mha_layer(key_size=6, value_size=4)), _mha
    ),
    "cnn": Case(
        _make_cnn, _cnn, rename=[(r"^", "layers.")], rename_out=[(r"^layers\.", "")]
    ),
    "encoder": Case(
        _plain(lambda k: EncoderBlock(8, 2, 16, key=k)),
        _encoder,
        rename=ENCODER_RENAME,
        rename_out=ENCODER_RENAME_OUT,
    ),
}
