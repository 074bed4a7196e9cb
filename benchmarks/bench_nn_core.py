"""Core layers: ecliptic vs Equinox, side by side in one process.

Run: `.venv/bin/python benchmarks/bench_nn_core.py`. Prints medians (microseconds)
and the ratio ecliptic / Equinox for:

- `init`: building the layer (parameter draws included);
- `eager`: one un-jitted call on one example (shape checks included);
- `trace`: `jax.make_jaxpr` of a call (where the trace-time shape checks run);
- `jit`: one call of `jax.jit` over the layer's flat array leaves (the compiled
  computation; identical programs should give a ratio near 1).

Layers are tiny, so the figures measure Python overhead, not FLOPs.
"""

from __future__ import annotations

import os
import sys

import equinox
import jax
import jax.random as jr


sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_us  # noqa: E402

import ecliptic.nn as enn  # noqa: E402


KEY = jr.PRNGKey(0)
CASES = {
    "Linear(16, 16)": (lambda nn: nn.Linear(16, 16, key=KEY), (16,)),
    "MLP(16, 16, 32, 4)": (lambda nn: nn.MLP(16, 16, 32, 4, key=KEY), (16,)),
    "MLP(..., scan=True)": (
        lambda nn: nn.MLP(16, 16, 32, 4, scan=True, key=KEY),
        (16,),
    ),
    "Conv2d(3, 8, 3)": (lambda nn: nn.Conv2d(3, 8, 3, padding=1, key=KEY), (3, 8, 8)),
    "MaxPool2d(2, 2)": (lambda nn: nn.MaxPool2d(2, 2), (3, 8, 8)),
    "RoPE(16)": (lambda nn: nn.RotaryPositionalEmbedding(16), (8, 16)),
}


def _jitted(layer, x):
    params, static = equinox.partition(layer, equinox.is_array)
    leaves, treedef = jax.tree.flatten(params)
    f = jax.jit(
        lambda leaves, x: equinox.combine(jax.tree.unflatten(treedef, leaves), static)(
            x
        )
    )
    return lambda: f(leaves, x).block_until_ready()


def _measure(make, shape):
    x = jr.normal(KEY, shape)
    layer = make()
    return {
        "init": median_us(make, repeat=7),
        "eager": median_us(lambda: layer(x).block_until_ready(), repeat=7),
        "trace": median_us(lambda: jax.make_jaxpr(layer)(x), repeat=7),
        "jit": median_us(_jitted(layer, x), repeat=7),
    }


def main() -> None:
    print(f"jax {jax.__version__}, equinox {equinox.__version__}, {jax.devices()[0]}")
    cols = ("init", "eager", "trace", "jit")
    head = f"{'layer':22s}" + "".join(f"{c:>22s}" for c in cols)
    print(head)
    print(f"{'':22s}" + "".join(f"{'ecl / eqx (ratio)':>22s}" for _ in cols))
    for name, (make, shape) in CASES.items():
        ours = _measure(lambda make=make: make(enn), shape)
        theirs = _measure(lambda make=make: make(equinox.nn), shape)
        row = f"{name:22s}"
        for c in cols:
            cell = f"{ours[c]:.0f} / {theirs[c]:.0f} ({ours[c] / theirs[c]:.2f})"
            row += f"{cell:>22s}"
        print(row)


if __name__ == "__main__":
    main()
