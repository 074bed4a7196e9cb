"""Smoke test of `examples/parallelism.py --tiny`: five strategies on 8 simulated CPU
devices (the script sets the device count itself), the same loss as one device."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from .helpers import xla_flags


REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "parallelism.py"
STRATEGIES = ["single device", "data parallel", "FSDP", "tensor parallel", "FSDP x TP"]
ROW = re.compile(
    r"^(?P<name>.+?)\s+(?P<mesh>[\d x]+?)\s+(?P<loss>[0-9.]+)\s+(?P<params>[\d,]+) "
    r"\((?P<ratio>[0-9.]+)\)\s+[\d,]+ \([0-9.]+\)\s+[0-9.]+ \([0-9.]+x\)$",
    re.M,
)


def _rows(out: str) -> dict[str, re.Match]:
    return {m["name"].strip(): m for m in ROW.finditer(out)}


@pytest.mark.multidevice
def test_parallelism_example_tiny():
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="error")
    env["XLA_FLAGS"] = xla_flags()  # the script asks for 8 devices itself
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "8 x cpu" in out, out
    rows = _rows(out)
    assert list(rows) == STRATEGIES, out
    assert rows["FSDP x TP"]["mesh"] == "2 x 4" and rows["FSDP"]["mesh"] == "8"
    losses = [float(m["loss"]) for m in rows.values()]
    assert max(losses) - min(losses) <= 1e-4 * abs(losses[0]), out
    assert "every strategy reaches the single-device loss (rtol 1e-4): True" in out
    # Data parallel keeps a whole copy per device; the sharded ones about 1/8.
    assert float(rows["data parallel"]["ratio"]) == 1.0
    for name in ["FSDP", "tensor parallel", "FSDP x TP"]:
        assert float(rows[name]["ratio"]) < 0.2, out


def test_row_pattern_reads_a_table_line():
    line = "FSDP x TP  2 x 4  1.967377  26,112 (0.131)  52,228 (0.131)  20.74 (3.0x)"
    (match,) = _rows(line).values()
    assert (match["name"].strip(), match["mesh"], match["ratio"]) == (
        "FSDP x TP",
        "2 x 4",
        "0.131",
    )
    assert _rows("FSDP  8  nan  1 (0.1)") == {}


def test_docs_quote_the_real_dry_run():
    """The `describe_sharding` table quoted in docs/parallelism.md is what the page's
    model gives on 8 devices (planned on an `AbstractMesh`: no devices needed)."""
    import jax.random as jr
    from jax.sharding import AbstractMesh

    import ecliptic as eqx

    text = (REPO / "docs" / "parallelism.md").read_text()
    quoted = re.search(r"```text\n(Sharding .*?)```", text, re.S)
    assert quoted, "no quoted dry run in docs/parallelism.md"
    setup = re.search(r"```python\n(import jax\n.*?)```", text, re.S)
    assert setup and "class Block" in setup.group(1)
    namespace: dict = {"__name__": "docs_parallelism_block"}
    exec(compile(setup.group(1), "docs/parallelism.md", "exec"), namespace)
    Block = namespace["Block"]
    model = eqx.filter_eval_shape(Block, 64, heads=8, key=jr.PRNGKey(0))
    table = eqx.describe_sharding(model, AbstractMesh((8,), ("data",)), eqx.fsdp())
    assert quoted.group(1).strip() == table.strip()


def test_example_refuses_too_few_devices():
    """Imported (not run as a script) the example leaves `XLA_FLAGS` alone; with
    fewer than 8 devices it stops with a message saying how to simulate them."""
    import importlib.util

    import jax

    if len(jax.devices("cpu")) >= 8:
        pytest.skip("this process already has 8 CPU devices")
    spec = importlib.util.spec_from_file_location("parallelism_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    flags = os.environ.get("XLA_FLAGS")
    spec.loader.exec_module(module)
    assert os.environ.get("XLA_FLAGS") == flags
    with pytest.raises(SystemExit, match="needs 8 devices but found 1.*XLA_FLAGS="):
        module.pick_devices()
