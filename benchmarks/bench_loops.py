"""Reverse mode through a long loop: memory and time of checkpointing, against Equinox.

Run: `.venv/bin/python benchmarks/bench_loops.py` (a few minutes on CPU; options:
`--steps`, `--size`, `--checkpoints 10 100 1000`, `--rounds`, `--no-equinox`).

The loop is a small ODE, `dy/dt = a * sin(y) - b * y + c`, with a state `y` of `--size`
floats (1000), integrated by explicit Euler for `--steps` steps (10 000). Each row
takes the gradient of `sum(y(T) ** 2)` with respect to `y0` and the parameters
`(a, b, c)`, compiled with `jax.jit`:

- `lax.scan`: reverse mode stores every step's residuals;
- `checkpointed, N`: `ecliptic.internal.while_loop(kind="checkpointed",
  checkpoints=N)` (and `equinox.internal.while_loop`, the same call, beside it).

Peak memory is XLA's own figure for the compiled gradient
(`jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes`: the scratch
memory beyond inputs and outputs). Time is the median over interleaved rounds of one
gradient call (`block_until_ready`). Targets: time at most Equinox's for the same
number of checkpoints; memory growing with the checkpoints, not with the steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from ecliptic.internal import while_loop  # noqa: E402


DT = 1e-3


def vector_field(y: jax.Array, params: tuple) -> jax.Array:
    a, b, c = params
    return a * jnp.sin(y) - b * y + c


def loss_scan(y0: jax.Array, params: tuple, steps: int) -> jax.Array:
    def step(y: jax.Array, _: None) -> tuple:
        return y + DT * vector_field(y, params), None

    y, _ = jax.lax.scan(step, y0, None, length=steps)
    return jnp.sum(y**2)


def make_loss_loop(loop: Callable, steps: int, checkpoints: int) -> Callable:
    def loss(y0: jax.Array, params: tuple) -> jax.Array:
        def cond(carry: tuple) -> jax.Array:
            return carry[0] < steps

        def body(carry: tuple) -> tuple:
            i, y = carry
            return i + 1, y + DT * vector_field(y, params)

        init = (jnp.zeros((), jnp.int32), y0)
        _, y = loop(
            cond,
            body,
            init,
            max_steps=steps,
            kind="checkpointed",
            checkpoints=checkpoints,
        )
        return jnp.sum(y**2)

    return loss


def compile_grad(loss: Callable, args: tuple) -> tuple[Callable, int]:
    """The compiled gradient and its temporary memory in bytes."""
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(*args).compile()
    analysis = compiled.memory_analysis()
    return compiled, int(analysis.temp_size_in_bytes)


def interleaved_ms(fns: dict[str, Callable], rounds: int) -> dict[str, float]:
    """Median milliseconds per call of each function, one call each per round, in
    an order rotated from round to round."""
    names = list(fns)
    for fn in fns.values():
        jax.block_until_ready(fn())
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            jax.block_until_ready(fns[n]())
            samples[n].append((time.perf_counter() - start) * 1e3)
    return {n: statistics.median(s) for n, s in samples.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-equinox", action="store_true")
    return parser.parse_args(argv)


def build_rows(args: argparse.Namespace, inputs: tuple) -> dict:
    """name -> (compiled gradient, temp bytes), and a check that all rows agree."""
    rows = {}
    rows["lax.scan (every step)"] = compile_grad(
        lambda y0, p: loss_scan(y0, p, args.steps), inputs
    )
    libs = {"ecliptic": while_loop}
    if not args.no_equinox:
        import equinox.internal as eqxi

        libs["equinox"] = eqxi.while_loop
    for n in args.checkpoints:
        for lib, loop in libs.items():
            loss = make_loss_loop(loop, args.steps, n)
            rows[f"{lib}, checkpointed {n}"] = compile_grad(loss, inputs)
    reference = rows["lax.scan (every step)"][0](*inputs)
    for name, (fn, _) in rows.items():
        got = fn(*inputs)
        for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(reference)):
            err = float(jnp.max(jnp.abs(g - r)) / (jnp.max(jnp.abs(r)) + 1e-30))
            if err > 1e-4:
                raise SystemExit(f"{name}: gradient differs from lax.scan ({err:.2e})")
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    key_y, key_a, key_b, key_c = jax.random.split(jax.random.PRNGKey(0), 4)
    size = (args.size,)
    y0 = jax.random.normal(key_y, size)
    params = (
        jax.random.normal(key_a, size),
        jax.random.uniform(key_b, size),
        jax.random.normal(key_c, size),
    )
    inputs = (y0, params)
    rows = build_rows(args, inputs)
    times = interleaved_ms(
        {name: (lambda fn=fn: fn(*inputs)) for name, (fn, _) in rows.items()},
        args.rounds,
    )
    print(
        f"device: {jax.devices()[0].device_kind}; {args.steps} steps, a state of "
        f"{args.size} float32; median of {args.rounds} rounds"
    )
    print(f"{'loop':<32} {'temp memory (MiB)':>18} {'time (ms)':>10}")
    for name, (_, temp) in rows.items():
        print(f"{name:<32} {temp / 2**20:>18.2f} {times[name]:>10.1f}")
    print_memory_against_steps(args, inputs)


def print_memory_against_steps(args: argparse.Namespace, inputs: tuple) -> None:
    """Temporary memory (compiled, not run) as the number of steps grows."""
    n = args.checkpoints[len(args.checkpoints) // 2]
    print(f"\ntemp memory (MiB) against steps; ecliptic with {n} checkpoints")
    print(f"{'steps':>8} {'lax.scan':>10} {'ecliptic':>10}")
    for steps in (args.steps // 10, args.steps, args.steps * 10):
        _, scan_temp = compile_grad(lambda y0, p, s=steps: loss_scan(y0, p, s), inputs)
        _, temp = compile_grad(make_loss_loop(while_loop, steps, n), inputs)
        print(f"{steps:>8} {scan_temp / 2**20:>10.2f} {temp / 2**20:>10.2f}")


if __name__ == "__main__":
    main()
