"""One model, five ways to spread it over 8 devices: the same training, the same loss.

The model is a small transformer block acting on one sequence: LayerNorm ->
multi-head attention -> residual, LayerNorm -> MLP -> residual. It is trained for a
few Adam steps on a fixed random batch (a regression onto random targets), once per
strategy:

- **single device**: a mesh of one device (the reference);
- **data parallel** (`eqx.data_parallel()`): 8 replicas of the parameters, the batch
  split 8 ways;
- **FSDP** (`eqx.fsdp()`): each large parameter split 8 ways on its largest
  dimension, gathered when used; the batch split 8 ways;
- **tensor parallel** (`eqx.tensor_parallel()`): the attention heads and the MLP's
  hidden units split 8 ways (Megatron-style column- then row-parallel layers), the
  batch replicated;
- **FSDP x TP** (`eqx.fsdp_tensor_parallel()`): a 2 x 4 mesh, tensor parallel on
  the 4-device `model` axis and FSDP (and the batch) on the 2-device `data` axis.

Each strategy is one declaration: a mesh and a `ShardingRules` preset. The model is
placed with `eqx.filter_shard(model, eqx.sharding_plan(model, mesh, rules))`, the
optimiser state is made under `eqx.filter_jit` (so it comes out sharded like the
parameters), and the training step is an ordinary `eqx.filter_jit` function: JAX's
SPMD partitioner inserts the collectives. The script checks that every strategy
reaches the single-device loss, and prints the parameter bytes that each device
holds and the time per step.

Without 8 accelerators, the script simulates 8 CPU devices (it sets `XLA_FLAGS=
--xla_force_host_platform_device_count=8` before JAX is imported, unless a device
count is already set). Simulated devices share the same CPU cores, so the sharded
steps show the overhead of the collectives, not a speed-up.

    python examples/parallelism.py             # about 15 s on a 2-core CPU
    python examples/parallelism.py --tiny      # smoke test: mostly compile time
    python examples/parallelism.py --steps 50 --describe
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import os


if __name__ == "__main__":
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        _flags += " --xla_force_host_platform_device_count=8"
        os.environ["XLA_FLAGS"] = _flags.strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402
from jaxtyping import Array, Float, PRNGKeyArray  # noqa: E402

import ecliptic as eqx  # noqa: E402


NUM_DEVICES = 8


class Block(eqx.Module):
    """A pre-norm transformer block on one sequence of shape `(seq, dim)`."""

    norm1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(self, dim: int, heads: int, *, key: PRNGKeyArray):
        k1, k2 = jr.split(key)
        self.norm1 = eqx.nn.LayerNorm(dim)
        self.attention = eqx.nn.MultiheadAttention(heads, dim, key=k1)
        self.norm2 = eqx.nn.LayerNorm(dim)
        self.mlp = eqx.nn.MLP(
            dim, dim, 4 * dim, depth=1, activation=jax.nn.gelu, key=k2
        )

    def __call__(self, x: Float[Array, "seq dim"]) -> Float[Array, "seq dim"]:
        """**Arguments:** `x`: one sequence, shape `(seq, dim)`.

        **Returns:** shape `(seq, dim)`.
        """
        h = jax.vmap(self.norm1)(x)
        x = x + self.attention(h, h, h)
        return x + jax.vmap(self.mlp)(jax.vmap(self.norm2)(x))


def strategies(devices: list) -> list[tuple[str, Mesh, eqx.ShardingRules]]:
    """`(name, mesh, rules)` for each strategy; the reference is a 1-device mesh."""
    line = np.array(devices)
    return [
        ("single device", Mesh(line[:1], ("data",)), eqx.data_parallel()),
        ("data parallel", Mesh(line, ("data",)), eqx.data_parallel()),
        ("FSDP", Mesh(line, ("data",)), eqx.fsdp()),
        ("tensor parallel", Mesh(line, ("model",)), eqx.tensor_parallel()),
        (
            "FSDP x TP",
            Mesh(line.reshape(2, NUM_DEVICES // 2), ("data", "model")),
            eqx.fsdp_tensor_parallel(),
        ),
    ]


def make_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch of random sequences `(batch, seq, dim)` and random targets."""
    rng = np.random.default_rng(args.seed)
    shape = (args.batch_size, args.seq, args.dim)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(shape).astype(np.float32)
    return x, y


def make_step(optimiser: optax.GradientTransformation, plan, state_plan):
    """The training step. It pins the updated parameters to `plan` (the model's
    `sharding_plan`) and the optimiser state to `state_plan`, so that every step
    sees the same layout (left free, XLA may shard a small replicated parameter's
    Adam moments, and the next call would compile again)."""

    def loss_fn(model: Block, x: Array, y: Array) -> Array:
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        params = eqx.filter(model, eqx.is_array)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        model = eqx.filter_shard(eqx.apply_updates(model, updates), plan)
        opt_state = eqx.filter_shard(opt_state, state_plan)
        return model, opt_state, loss

    return step


def init_optimiser(optimiser: optax.GradientTransformation, model, plan, mesh):
    """The optimiser state laid out like the parameters: each leaf shaped like a
    parameter (Adam's two moments) gets that parameter's sharding, the other
    leaves (the step count) are replicated. Made by one `jax.jit` with these
    `out_shardings`, so the first training step sees the same layout as the
    later ones. Returns the state and its shardings."""
    params = eqx.filter(model, eqx.is_array)
    abstract = jax.eval_shape(optimiser.init, params)
    shardings = optax.tree_map_params(
        optimiser,
        lambda _, sharding: sharding,
        abstract,
        plan,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    return jax.jit(optimiser.init, out_shardings=shardings)(params), shardings


def bytes_per_device(tree) -> int:
    """The bytes of the array leaves of `tree` that the first device holds."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    return sum(leaf.addressable_shards[0].data.nbytes for leaf in leaves)


def run(name: str, mesh: Mesh, rules: eqx.ShardingRules, args) -> dict:
    """Places the model, optimiser state and batch for one strategy, and trains."""
    model = Block(args.dim, args.heads, key=jr.PRNGKey(args.seed))
    plan = eqx.sharding_plan(model, mesh, rules)
    model = eqx.filter_shard(model, plan)
    x, y = jax.device_put(make_data(args), rules.batch_sharding(mesh))
    optimiser = optax.adam(args.lr)
    opt_state, state_plan = init_optimiser(optimiser, model, plan, mesh)
    step = make_step(optimiser, plan, state_plan)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model, opt_state, loss = step(model, opt_state, x, y)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    return {
        "name": name,
        "mesh": " x ".join(map(str, mesh.devices.shape)),
        "loss": float(loss),
        "params": bytes_per_device(model),
        "opt_state": bytes_per_device(opt_state),
        # the first step compiles; the others are the steady step time
        "step_ms": statistics.median(times[1:]) * 1e3,
    }


def print_table(rows: list[dict], steps: int) -> None:
    base = rows[0]
    head = (
        f"{'strategy':<16} {'mesh':>6} {f'loss after {steps} steps':>22} "
        f"{'param bytes/device':>22} {'opt-state bytes/device':>22} {'step ms':>14}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        params = f"{r['params']:,} ({r['params'] / base['params']:.3f})"
        opt = f"{r['opt_state']:,} ({r['opt_state'] / base['opt_state']:.3f})"
        step = f"{r['step_ms']:.2f} ({r['step_ms'] / base['step_ms']:.1f}x)"
        print(
            f"{r['name']:<16} {r['mesh']:>6} {r['loss']:>22.6f} {params:>22} "
            f"{opt:>22} {step:>14}"
        )


def pick_devices() -> list:
    """8 devices: the default backend's if it has 8, else the (simulated) CPUs."""
    devices = jax.devices()
    if len(devices) < NUM_DEVICES:
        devices = jax.devices("cpu")
    if len(devices) < NUM_DEVICES:
        raise SystemExit(
            f"this example needs {NUM_DEVICES} devices but found {len(devices)}; "
            f"run it with XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{NUM_DEVICES} to simulate them on the CPU"
        )
    return devices[:NUM_DEVICES]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--steps", type=int, default=None, help="training steps (default: 10)")
    add("--batch-size", type=int, default=16, help="divisible by 8 (default: 16)")
    add("--seq", type=int, default=64, help="sequence length (default: 64)")
    add("--dim", type=int, default=256, help="model width, divisible by 8 (256)")
    add("--heads", type=int, default=8, help="attention heads (default: 8)")
    add("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    add("--seed", type=int, default=0, help="default: 0")
    add("--describe", action="store_true", help="print each strategy's dry run")
    add("--tiny", action="store_true", help="smoke test: width 64, 3 steps")
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.seq, args.dim = 8, 8, 64
    if args.steps is None:
        args.steps = 3 if args.tiny else 10
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step compiles)")
    if args.dim % NUM_DEVICES or args.batch_size % NUM_DEVICES:
        parser.error(f"--dim and --batch-size must be divisible by {NUM_DEVICES}")
    if args.heads % NUM_DEVICES or args.dim % args.heads:
        parser.error(f"--heads must be divisible by {NUM_DEVICES} and divide --dim")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    devices = pick_devices()
    print(
        f"jax {jax.__version__}, {len(devices)} x {devices[0].device_kind}; "
        f"width {args.dim}, {args.heads} heads, batch {args.batch_size} x "
        f"{args.seq} tokens, {args.steps} Adam steps"
    )
    rows = []
    for name, mesh, rules in strategies(devices):
        if args.describe and mesh.size > 1:
            model = Block(args.dim, args.heads, key=jr.PRNGKey(args.seed))
            print(f"\n{name}:\n{eqx.describe_sharding(model, mesh, rules)}\n")
        rows.append(run(name, mesh, rules, args))
    print_table(rows, args.steps)
    reference = rows[0]["loss"]
    for row in rows[1:]:
        assert np.isclose(row["loss"], reference, rtol=1e-4, atol=1e-6), (
            f"{row['name']} reached loss {row['loss']}, single device {reference}"
        )
    print("every strategy reaches the single-device loss (rtol 1e-4): True")
    if devices[0].platform == "cpu":
        print(
            "(the 8 devices are simulated on this machine's CPU cores: the step "
            "times show each strategy's overhead, not the speed-up of 8 real devices)"
        )


if __name__ == "__main__":
    main()
