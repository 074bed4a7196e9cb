"""Parallelism strategies on 8 devices: step time and parameter memory per device.

Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_parallel.py [--quick]
[--dim 256] [--rounds 15]` (under a minute and a half on the 2-core development
VM; `--quick`: width 128, 5 rounds).

Without 8 accelerators the script simulates 8 CPU devices (`XLA_FLAGS=
--xla_force_host_platform_device_count=8`, set before JAX is imported unless a
device count is already set). **On a CPU the 8 devices share the same cores**: a
sharded step does the same arithmetic as the single-device step plus the
collectives and the per-device dispatch, so these figures measure the *overhead* of
each strategy, not a speed-up. On real accelerators each device computes its part at
the same time as the others.

The model is a pre-norm transformer block on one sequence (`LayerNorm`,
`MultiheadAttention` with 8 heads, `LayerNorm`, an `MLP` of hidden width `4 * dim`)
mapped over a batch of 16 sequences of 64 tokens. The timed function is one Adam
training step under `filter_jit` (parameters and optimiser state pinned to their
shardings). Strategies: a 1-device mesh (the baseline), `data_parallel`, `fsdp`,
`tensor_parallel` on 8 devices and `fsdp_tensor_parallel` on a 2 x 4 mesh. For
each:

- **compile s**: lowering and compiling the step (`step.lower(...).compile()`),
  after a warm-up compile of a small model;
- **step ms**: the steady time of one compiled step; the strategies take turns in
  each round (`_timing.interleaved_us`), and the ratio is the median over rounds of
  the per-round ratio to the baseline;
- **params / opt state per device**: bytes of the arrays that the first device
  holds (its addressable shard), and their fraction of the unsharded bytes.

Every strategy must reach the baseline's loss (checked, relative tolerance 1e-4).
"""

from __future__ import annotations

import os


if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    _flags = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    )
    os.environ["XLA_FLAGS"] = _flags.strip()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402


sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_us  # noqa: E402

import ecliptic as eqx  # noqa: E402


HEADS, BATCH, SEQ, LR, DEVICES = 8, 16, 64, 1e-3, 8


class Block(eqx.Module):
    norm1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(self, dim: int, *, key):
        k1, k2 = jr.split(key)
        self.norm1 = eqx.nn.LayerNorm(dim)
        self.attention = eqx.nn.MultiheadAttention(HEADS, dim, key=k1)
        self.norm2 = eqx.nn.LayerNorm(dim)
        self.mlp = eqx.nn.MLP(dim, dim, 4 * dim, 1, activation=jax.nn.gelu, key=k2)

    def __call__(self, x):
        h = jax.vmap(self.norm1)(x)
        x = x + self.attention(h, h, h)
        return x + jax.vmap(self.mlp)(jax.vmap(self.norm2)(x))


def strategies(devices: list) -> dict[str, tuple[Mesh, eqx.ShardingRules]]:
    line = np.array(devices[:DEVICES])
    grid = line.reshape(2, DEVICES // 2)
    return {
        "1 device": (Mesh(line[:1], ("data",)), eqx.data_parallel()),
        "data parallel": (Mesh(line, ("data",)), eqx.data_parallel()),
        "FSDP": (Mesh(line, ("data",)), eqx.fsdp()),
        "tensor parallel": (Mesh(line, ("model",)), eqx.tensor_parallel()),
        "FSDP x TP (2 x 4)": (
            Mesh(grid, ("data", "model")),
            eqx.fsdp_tensor_parallel(),
        ),
    }


def make_step(optimiser, plan, state_plan):
    def loss_fn(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        params = eqx.filter(model, eqx.is_array)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        model = eqx.filter_shard(eqx.apply_updates(model, updates), plan)
        return model, eqx.filter_shard(opt_state, state_plan), loss

    return step


def per_device(tree) -> tuple[int, int]:
    """(bytes on the first device, unsharded bytes) of the arrays in `tree`."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    local = sum(leaf.addressable_shards[0].data.nbytes for leaf in leaves)
    return local, sum(leaf.nbytes for leaf in leaves)


def prepare(mesh: Mesh, rules: eqx.ShardingRules, dim: int, data) -> dict:
    """Places everything for one strategy, compiles the step, runs it twice."""
    model = Block(dim, key=jr.PRNGKey(0))
    plan = eqx.sharding_plan(model, mesh, rules)
    model = eqx.filter_shard(model, plan)
    x, y = jax.device_put(data, rules.batch_sharding(mesh))
    optimiser = optax.adam(LR)
    params = eqx.filter(model, eqx.is_array)
    state_plan = optax.tree_map_params(
        optimiser,
        lambda _, sharding: sharding,
        jax.eval_shape(optimiser.init, params),
        plan,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    opt_state = jax.jit(optimiser.init, out_shardings=state_plan)(params)
    step = make_step(optimiser, plan, state_plan)
    start = time.perf_counter()
    compiled = step.lower(model, opt_state, x, y).compile()
    compile_s = time.perf_counter() - start
    model, opt_state, loss = compiled(model, opt_state, x, y)
    model, opt_state, loss = compiled(model, opt_state, x, y)
    return {
        "call": lambda: compiled(model, opt_state, x, y)[2].block_until_ready(),
        "compile": compile_s,
        "loss": float(loss),
        "params": per_device(model),
        "opt_state": per_device(opt_state),
    }


def _bytes(local_total: tuple[int, int]) -> str:
    local, total = local_total
    return f"{local / 2**20:.2f} MiB ({local / total:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="width 128, 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.dim, args.rounds = 128, 5
    devices = jax.devices()
    if len(devices) < DEVICES:
        devices = jax.devices("cpu")
    print(
        f"jax {jax.__version__}, {len(devices)} x {devices[0].device_kind}, "
        f"width {args.dim}, {HEADS} heads, batch {BATCH} x {SEQ} tokens, Adam"
    )
    if devices[0].platform == "cpu":
        print(
            "the 8 devices are simulated on this machine's CPU cores: the step "
            "times show each strategy's overhead, not the speed-up of 8 real devices"
        )
    rng = np.random.default_rng(0)
    data = tuple(
        rng.standard_normal((BATCH, SEQ, args.dim)).astype(np.float32) for _ in "xy"
    )
    # warm-up: JAX's first trace and compile are slower
    mesh, rules = strategies(devices)["1 device"]
    prepare(mesh, rules, 64, tuple(d[:, :8, :64] for d in data))
    rows = {
        name: prepare(mesh, rules, args.dim, data)
        for name, (mesh, rules) in strategies(devices).items()
    }
    base = rows["1 device"]["loss"]
    for name, row in rows.items():
        assert np.isclose(row["loss"], base, rtol=1e-4), (name, row["loss"], base)
    medians, ratios = interleaved_us(
        {name: row["call"] for name, row in rows.items()}, rounds=args.rounds
    )
    head = (
        f"{'strategy':<18} | {'compile s':>9} | {'step ms (ratio)':>16} | "
        f"{'params/device (fraction)':>25} | {'opt state/device (fraction)':>27}"
    )
    print(head)
    print("-" * len(head))
    for name, row in rows.items():
        step = f"{medians[name] / 1e3:.2f} ({ratios[name]:.2f}x)"
        print(
            f"{name:<18} | {row['compile']:>9.2f} | {step:>16} | "
            f"{_bytes(row['params']):>25} | {_bytes(row['opt_state']):>27}",
            flush=True,
        )


if __name__ == "__main__":
    main()
