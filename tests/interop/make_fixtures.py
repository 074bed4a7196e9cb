"""Writes the PyTorch fixtures of `tests/interop/` and checks both directions.

Run once by a developer (CI does not: it needs torch), in a virtual environment of
its own that is never among the project's dependencies:

```
python3 -m venv /work/torchenv
/work/torchenv/bin/pip install torch==2.13.0 numpy safetensors \
    jax jaxtyping wadler_lindig typing_extensions
/work/torchenv/bin/python tests/interop/make_fixtures.py
```

For each case (every `torch.nn` layer with an ecliptic counterpart, a small CNN and
a transformer encoder block) it builds the torch module with a fixed seed, gives
every parameter random values (and the `BatchNorm`s running statistics by a few
training steps), and writes `fixtures/<case>.safetensors`: the module's state dict
under torch's names, the inputs and torch's outputs (in eval mode) under `io.*`.

It imports ecliptic from this checkout's `src/` (hence jax in the same environment)
and checks, in one run:

1. forward: the fixture loaded with `ecliptic.load_safetensors` into the model of
   `cases.py` gives torch's outputs (the tests check this again without torch);
2. reverse: an ecliptic model with random values, exported with
   `ecliptic.state_dict`, loads into the torch module with
   `load_state_dict(strict=True)` and gives ecliptic's outputs.

Both within `atol=1e-5` (float32). It prints one line per case and exits non-zero
if any check fails.
"""

from __future__ import annotations

import pathlib
import sys


HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))
sys.path.insert(0, str(HERE.parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import safetensors.numpy  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ecliptic as eqx  # noqa: E402
from tests.interop.cases import CASES, file_rename, FIXTURES, IO_PREFIX  # noqa: E402


ATOL = 1e-5


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def _cells(cell: nn.Module, lstm: bool) -> tuple:
    inputs = {"x": _randn(5, 2, 3), "h0": _randn(2, 4)}
    if lstm:
        inputs["c0"] = _randn(2, 4)

    def run(m: nn.Module, i: dict) -> dict:
        hidden = (i["h0"], i["c0"]) if lstm else i["h0"]
        hs, cs = [], []
        for x in i["x"]:
            hidden = m(x, hidden)
            hs.append(hidden[0] if lstm else hidden)
            if lstm:
                cs.append(hidden[1])
        out = {"y": torch.stack(hs)}
        if lstm:
            out["c"] = torch.stack(cs)
        return out

    return cell, inputs, run


def _simple(module: nn.Module, *shape: int) -> tuple:
    return module, {"x": _randn(*shape)}, lambda m, i: {"y": m(i["x"])}


def _mha(module: nn.Module, kdim: int, vdim: int) -> tuple:
    inputs = {"q": _randn(1, 5, 8), "k": _randn(1, 4, kdim), "v": _randn(1, 4, vdim)}

    def run(m: nn.Module, i: dict) -> dict:
        return {"y": m(i["q"], i["k"], i["v"], need_weights=False)[0]}

    return module, inputs, run


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(24, 5),
    )


def torch_case(name: str) -> tuple:
    """`(module, inputs, run)` for a case; `run(module, inputs) -> outputs`."""
    table = {
        "linear": lambda: _simple(nn.Linear(4, 3), 2, 4),
        "conv1d": lambda: _simple(nn.Conv1d(2, 3, 3, stride=2, padding=1), 2, 2, 7),
        "conv2d": lambda: _simple(nn.Conv2d(2, 4, 3, padding=1, groups=2), 1, 2, 5, 5),
        "conv3d": lambda: _simple(nn.Conv3d(2, 2, (2, 3, 2)), 1, 2, 4, 4, 3),
        "conv_transpose1d": lambda: _simple(
            nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1, output_padding=1), 2, 2, 6
        ),
        "conv_transpose2d": lambda: _simple(
            nn.ConvTranspose2d(
                4, 2, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2
            ),
            1,
            4,
            5,
            5,
        ),
        "conv_transpose3d": lambda: _simple(
            nn.ConvTranspose3d(2, 3, 2, stride=2), 1, 2, 2, 3, 2
        ),
        "embedding": lambda: (
            nn.Embedding(10, 4),
            {"x": torch.tensor([3, 0, 9, 3, 5])},
            lambda m, i: {"y": m(i["x"])},
        ),
        "layer_norm": lambda: _simple(nn.LayerNorm(6), 3, 6),
        "group_norm": lambda: _simple(nn.GroupNorm(2, 4), 2, 4, 3),
        "rms_norm": lambda: _simple(nn.RMSNorm(6, eps=1e-6), 3, 6),
        "batch_norm1d": lambda: _simple(nn.BatchNorm1d(3), 4, 3, 5),
        "batch_norm2d": lambda: _simple(nn.BatchNorm2d(2), 3, 2, 3, 3),
        "prelu": lambda: _simple(nn.PReLU(3), 2, 3, 4),
        "gru_cell": lambda: _cells(nn.GRUCell(3, 4), lstm=False),
        "lstm_cell": lambda: _cells(nn.LSTMCell(3, 4), lstm=True),
        "multihead_attention": lambda: _mha(
            nn.MultiheadAttention(8, 2, batch_first=True), 8, 8
        ),
        "multihead_attention_kdim": lambda: _mha(
            nn.MultiheadAttention(8, 2, kdim=6, vdim=4, batch_first=True), 6, 4
        ),
        "cnn": lambda: _simple(_cnn(), 2, 1, 8, 8),
        "encoder": lambda: _simple(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
            1,
            5,
            8,
        ),
    }
    return table[name]()


def _train_batch_norms(module: nn.Module, inputs: dict, run) -> None:
    """A few training steps, so that the running statistics are not trivial."""
    if not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()
    ):
        return
    module.train()
    with torch.no_grad():
        for _ in range(3):
            run(module, {k: v * 2 + 1 for k, v in inputs.items()})


def _numpy(tensors: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in tensors.items()}


def write_fixture(index: int, name: str) -> tuple[dict, dict]:
    torch.manual_seed(index)
    module, inputs, run = torch_case(name)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    _train_batch_norms(module, inputs, run)
    module.eval()
    with torch.no_grad():
        outputs = _numpy(run(module, inputs))
    tensors = _numpy(module.state_dict())
    tensors.update({IO_PREFIX + k: v for k, v in _numpy(inputs).items()})
    tensors.update({IO_PREFIX + "out." + k: v for k, v in outputs.items()})
    tensors = {k: np.asarray(v, order="C") for k, v in tensors.items()}
    safetensors.numpy.save_file(tensors, str(FIXTURES / f"{name}.safetensors"))
    return _numpy(inputs), outputs


def _max_error(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - b[k]))) for k in b)


def check_forward(name: str, inputs: dict, outputs: dict) -> float:
    case = CASES[name]
    model, state = case.make(jr.PRNGKey(0))
    rename = file_rename(case.rename)
    path = FIXTURES / f"{name}.safetensors"
    if state is None:
        model = eqx.load_safetensors(path, model, rename=rename)
    else:
        model, state = eqx.load_safetensors(path, model, state=state, rename=rename)
    return _max_error(case.run(model, state, inputs), outputs)


def _perturb(tree, key):
    """Random values for every float array (positive shifts keep variances
    positive), and 2 added to every integer array (a `BatchNorm`'s count)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jr.split(key, max(len(leaves), 1))
    new = []
    for leaf, k in zip(leaves, keys):
        if eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.floating):
            leaf = leaf + jr.uniform(k, leaf.shape, leaf.dtype, 0.1, 0.6)
        elif eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.integer):
            leaf = leaf + jnp.asarray(2, leaf.dtype)
        new.append(leaf)
    return jax.tree.unflatten(treedef, new)


def check_reverse(index: int, name: str, inputs: dict) -> float:
    case = CASES[name]
    model, state = case.make(jr.PRNGKey(100 + index))
    model = _perturb(model, jr.PRNGKey(200 + index))
    if state is not None:
        state = _perturb(state, jr.PRNGKey(300 + index))
    expected = {k: np.asarray(v) for k, v in case.run(model, state, inputs).items()}
    tensors = eqx.state_dict(model, state, rename=case.rename_out)
    torch.manual_seed(index)
    module, torch_inputs, run = torch_case(name)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    module.eval()
    with torch.no_grad():
        got = _numpy(run(module, {k: torch.from_numpy(v) for k, v in inputs.items()}))
    return _max_error(got, expected)


def main() -> int:
    FIXTURES.mkdir(exist_ok=True)
    failed = []
    print(f"torch {torch.__version__}, jax {jax.__version__}, atol {ATOL}")
    for index, name in enumerate(CASES):
        inputs, outputs = write_fixture(index, name)
        forward = check_forward(name, inputs, outputs)
        reverse = check_reverse(index, name, inputs)
        ok = forward <= ATOL and reverse <= ATOL
        if not ok:
            failed.append(name)
        print(
            f"{name:26s} torch->ecliptic max error {forward:.2e}  "
            f"ecliptic->torch max error {reverse:.2e}  {'ok' if ok else 'FAILED'}"
        )
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.safetensors"))
    print(f"{len(CASES)} fixtures, {total} bytes in {FIXTURES}")
    if failed:
        print("FAILED:", ", ".join(failed))
        return 1
    print("both directions match torch for every case")
    return 0


if __name__ == "__main__":
    sys.exit(main())
