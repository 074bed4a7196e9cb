"""Smoke tests for `examples/`: each script runs in a subprocess on tiny settings.

The MNIST example reads idx files from `../shared/data/mnist` (relative to the
repository root) or from `$ECLIPTIC_MNIST_DIR`; it is skipped, with the reason shown,
when neither holds them.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic as eqx


REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SCRIPTS = [
    "digits.py",
    "mnist.py",
    "train_rnn.py",
    "stateful.py",
    "frozen_layer.py",
    "serialisation.py",
    "neural_ode.py",
    "language_model.py",
    "parallelism.py",
]


def mnist_dir() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get("ECLIPTIC_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist")
    )


def run(script: str, *args: str, timeout: float = 120) -> str:
    """Runs one example; fails with its output if it exits non-zero."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{output}"
    return proc.stdout


def load_example(script: str):
    spec = importlib.util.spec_from_file_location(script[:-3], EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script, capsys):
    module = load_example(script)
    with pytest.raises(SystemExit) as exc:
        module.parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--tiny" in out and "usage:" in out


@pytest.mark.slow
def test_digits_demo(tmp_path):
    """The demo at its default settings: held-out accuracy of at least 97%."""
    out = run("digits.py", "--out-dir", str(tmp_path), "--seed", "0")
    acc = float(re.search(r"held-out accuracy: ([0-9.]+)", out).group(1))
    assert acc >= 0.97, out
    assert "predictions identical" in out
    assert (tmp_path / "digits.eqx").stat().st_size > 0
    png = (tmp_path / "digits_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_mnist_tiny():
    data = mnist_dir()
    if (
        not (data / "t10k-images-idx3-ubyte.gz").exists()
        and not (data / "t10k-images-idx3-ubyte").exists()
    ):
        pytest.skip(f"MNIST idx files not found in {data} (set ECLIPTIC_MNIST_DIR)")
    out = run("mnist.py", "--data-dir", str(data), "--tiny")
    assert "512 training images, 256 test images" in out
    acc = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert 0.0 <= acc <= 1.0


def test_mnist_missing_data_is_a_clear_error(tmp_path):
    module = load_example("mnist.py")
    with pytest.raises(SystemExit, match="no MNIST idx files in"):
        module.load_mnist(tmp_path, seed=0)


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes a uint8 idx file (gzipped if the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files(tmp_path):
    module = load_example("mnist.py")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28))
    write_idx(tmp_path / "a-idx3-ubyte.gz", images)
    write_idx(tmp_path / "b-idx3-ubyte", images)
    for name in ("a-idx3-ubyte.gz", "b-idx3-ubyte"):
        np.testing.assert_array_equal(module.read_idx(tmp_path / name), images)


def test_mnist_splits(tmp_path):
    module = load_example("mnist.py")
    rng = np.random.default_rng(0)
    write_idx(
        tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10000, 28, 28))
    )
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, (10000,)))
    x_tr, y_tr, x_te, y_te = module.load_mnist(tmp_path, seed=0)
    assert (x_tr.shape, x_te.shape) == ((8000, 1, 28, 28), (2000, 1, 28, 28))
    assert (y_tr.shape, y_te.shape) == ((8000,), (2000,))
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    # With the training files present too, the standard split is used.
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, (30,)))
    x_tr, y_tr, x_te, y_te = module.load_mnist(tmp_path, seed=0)
    assert (len(x_tr), len(y_tr), len(x_te), len(y_te)) == (30, 30, 10000, 10000)


def test_train_rnn_tiny():
    out = run("train_rnn.py", "--tiny")
    assert "test accuracy:" in out


def test_stateful_tiny():
    out = run("stateful.py", "--tiny")
    assert "test accuracy:" in out


def test_frozen_layer_tiny():
    out = run("frozen_layer.py", "--tiny")
    assert "frozen layers unchanged: True; last layer trained: True" in out


def test_neural_ode_tiny():
    out = run("neural_ode.py", "--tiny")
    assert "final loss:" in out


def test_serialisation_tiny(tmp_path):
    out = run("serialisation.py", "--tiny", "--out-dir", str(tmp_path))
    assert "outputs identical after loading: True" in out
    assert (tmp_path / "model.eqx").exists()


# The Python code blocks of the documentation run, page by page, in one namespace per
# page (blocks build on each other). A block preceded by `<!-- skip-snippet -->` is
# not run (PyTorch code, or code shown failing on purpose).
DOC_PAGES = [
    "README.md",
    "docs/index.md",
    "docs/getting_started.md",
    "docs/all_of_ecliptic.md",
    "docs/faq.md",
    "docs/from_pytorch.md",
    "docs/handling_errors.md",
    "docs/internal.md",
    "docs/conveniences.md",
    "docs/lora.md",
    "docs/mixed_precision.md",
    "docs/recurrent.md",
    "docs/stacks.md",
    "docs/decoding.md",
    "docs/parallelism.md",
]
CODE_BLOCK = re.compile(r"(<!-- skip-snippet -->\n)?```python\n(.*?)```", re.DOTALL)


def doc_snippets(page: str) -> list[str]:
    text = (REPO / page).read_text()
    return [code for skip, code in CODE_BLOCK.findall(text) if not skip]


@pytest.mark.parametrize("page", DOC_PAGES)
def test_doc_snippets_run(page, tmp_path, monkeypatch):
    snippets = doc_snippets(page)
    assert snippets, f"no Python code blocks in {page}"
    monkeypatch.chdir(tmp_path)  # snippets may write checkpoints
    # A real module, so that dataclasses (and so Modules) defined in it work.
    module = types.ModuleType(f"snippets_{pathlib.Path(page).stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # Readers run the snippets with JAX's default promotion rules, not the test
    # suite's strict ones (optax itself relies on int/float promotion).
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        for i, code in enumerate(snippets):
            exec(compile(code, f"{page}[block {i}]", "exec"), module.__dict__)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text)


KEY = jax.random.PRNGKey(0)
QUOTED_ERRORS = [
    ("docs/faq.md", lambda: eqx.nn.Linear(64, 16, key=KEY)(jnp.ones((3, 16, 64)))),
    ("docs/faq.md", lambda: eqx.nn.Linear(16, 16, key=KEY)(jnp.ones((16, 64)))),
    (
        "docs/from_equinox.md",
        lambda: eqx.nn.Linear(16, 16, key=KEY)(jnp.ones((16, 64))),
    ),
    ("docs/faq.md", lambda: eqx.nn.Conv2d(3, 8, 3, key=KEY)(jnp.ones((5, 3, 8, 8)))),
]


@pytest.mark.parametrize("page, make_error", QUOTED_ERRORS)
def test_docs_quote_the_real_shape_errors(page, make_error):
    """The error messages quoted in the docs are the ones the layers raise."""
    with pytest.raises(ValueError, match="expected `x` of shape") as exc:
        make_error()
    message = _normalise(str(exc.value))
    assert message in _normalise((REPO / page).read_text()), message


def test_digits_float16_tiny(tmp_path):
    """The demo in float16 mixed precision, with a dynamic loss scale."""
    out = run(
        "digits.py", "--tiny", "--precision", "float16", "--out-dir", str(tmp_path)
    )
    acc = float(re.search(r"held-out accuracy: ([0-9.]+)", out).group(1))
    assert 0.0 <= acc <= 1.0
    line = re.search(
        r"mixed precision: float16 compute, float32 master weights; (\d+) steps "
        r"skipped, final loss scale ([0-9.e+]+)",
        out,
    )
    assert line, out
    assert float(line.group(2)) >= 1.0
    assert "predictions identical" in out


def test_language_model_tiny(tmp_path):
    """The decoder-only transformer: trains a few steps, then decoding without and
    with the KV cache must give the same tokens, greedily and by sampling."""
    out = run("language_model.py", "--tiny", "--out-dir", str(tmp_path))
    assert "cached and uncached greedy samples agree: True" in out
    assert "cached and uncached temperature 0.8 samples agree: True" in out
    assert re.search(r"held-out loss before training: [0-9.]+, after: [0-9.]+", out)
    diff = re.search(r"logits vs the model's: ([0-9.e+-]+) max", out)
    assert diff and float(diff.group(1)) < 1e-3, out
    speed = r"uncached \d+ tokens/s \([0-9.]+ s\), cached \d+ tokens/s \([0-9.]+ s\)"
    assert re.search(rf"^greedy, 24 tokens: {speed}$", out, re.M), out
    png = (tmp_path / "language_model_loss.png").read_bytes()
    assert png.startswith(b"\x89PNG")
