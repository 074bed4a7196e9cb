"""Deep stacks: `nn.Stacked` (one layer, scanned) against `nn.Sequential` (unrolled).

Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_stack.py [--depths 4 16 64]
[--rounds 21]` (about a minute on the 2-core development VM).

The model is `depth` residual MLP blocks of width 64 (`x + W2 @ relu(W1 @ x + b1) +
b2`); `Stacked` and `Sequential` hold the same weights (the `Sequential` is built from
`list(stacked)`). The timed function is one training step under `filter_jit`: the mean
squared error of `jax.vmap(model)` over a batch of 32, `filter_value_and_grad`, and
an SGD update with `apply_updates`. For each depth and each model:

- **trace + lower**: `step.lower(model, x, y)` (Python tracing and StableHLO);
- **compile**: `.compile()` of that (XLA);
- **step**: the steady time of one call of the compiled step (median over rounds in
  which the two models take turns, `_timing.interleaved_us`), in microseconds.

Ratios are Stacked / Sequential.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import jax.random as jr


sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_us  # noqa: E402

import ecliptic as eqx  # noqa: E402
from ecliptic.nn._stack import Stacked  # noqa: E402


WIDTH, BATCH, LR = 64, 32, 1e-3


class Block(eqx.Module):
    lin1: eqx.nn.Linear
    lin2: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jr.split(key)
        self.lin1 = eqx.nn.Linear(WIDTH, WIDTH, key=k1)
        self.lin2 = eqx.nn.Linear(WIDTH, WIDTH, key=k2)

    def __call__(self, x, *, key=None):
        return x + self.lin2(jax.nn.relu(self.lin1(x)))


def make_step():
    """A fresh `filter_jit` training step (so that nothing is cached between runs)."""

    def loss(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, x, y):
        value, grads = eqx.filter_value_and_grad(loss)(model, x, y)
        updates = jax.tree.map(lambda g: -LR * g, grads)
        return eqx.apply_updates(model, updates), value

    return step


def compile_times(model, x, y):
    """`(seconds to trace and lower, seconds to compile, compiled step)`."""
    step = make_step()
    start = time.perf_counter()
    lowered = step.lower(model, x, y)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    return traced - start, done - traced, compiled


def measure(depth: int, rounds: int) -> dict:
    kx, ky, kmodel = jr.split(jr.PRNGKey(depth), 3)
    x = jr.normal(kx, (BATCH, WIDTH))
    y = jr.normal(ky, (BATCH, WIDTH))
    stacked = Stacked(Block, depth, key=kmodel)
    models = {"Sequential": eqx.nn.Sequential(list(stacked)), "Stacked": stacked}
    row, calls, losses = {}, {}, []
    for name, model in models.items():
        lower_s, compile_s, compiled = compile_times(model, x, y)
        row[name] = {"lower": lower_s, "compile": compile_s}
        calls[name] = lambda c=compiled, m=model: c(m, x, y)[1].block_until_ready()
        losses.append(float(calls[name]()))
    # the two models compute the same loss
    assert abs(losses[0] - losses[1]) <= 1e-4 * abs(losses[0]), losses
    medians, ratios = interleaved_us(calls, rounds=rounds)
    for name in models:
        row[name]["step"] = medians[name]
    row["step_ratio"] = ratios["Stacked"]
    return row


def _cell(seq: float, stk: float, fmt: str, ratio: float | None = None) -> str:
    ratio = stk / seq if ratio is None else ratio
    return f"{seq:{fmt}} / {stk:{fmt}} ({ratio:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0]}, width {WIDTH}, batch {BATCH}")
    head = (
        f"{'depth':>5} | {'trace+lower s: seq / stk (ratio)':>34} | "
        f"{'compile s: seq / stk (ratio)':>32} | {'step us: seq / stk (ratio)':>30}"
    )
    print(head)
    print("-" * len(head))
    measure(2, rounds=1)  # warm-up: JAX's first trace and compile are slower
    for depth in args.depths:
        r = measure(depth, args.rounds)
        seq, stk = r["Sequential"], r["Stacked"]
        lower = _cell(seq["lower"], stk["lower"], ".3f")
        comp = _cell(seq["compile"], stk["compile"], ".3f")
        step = _cell(seq["step"], stk["step"], ".0f", r["step_ratio"])
        print(f"{depth:>5} | {lower:>34} | {comp:>32} | {step:>30}", flush=True)


if __name__ == "__main__":
    main()
