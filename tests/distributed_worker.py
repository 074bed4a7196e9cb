"""One process of the many-host training test (`tests/test_distributed.py`).

Trains a small MLP for a few Adam steps on a global batch sharded over every device
of every process, once per strategy (`data_parallel`, then `fsdp`), and prints, for
each step, a line `loss <strategy> <step> <value>` (and a `params <strategy> <sum>`
line at the end). Run it as one process with 8 local devices, or as two processes
with 4 local devices each that meet through `jax.distributed.initialize`: the
printed losses must agree.

    python tests/distributed_worker.py --local-devices 8
    python tests/distributed_worker.py --local-devices 4 --num-processes 2 \\
        --process-id 0 --port 12345      # and the same with --process-id 1

Each process loads only its own rows of the batch (as a host reads its own shard of
a data set) and builds the global array with `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import argparse
import os
import sys


WIDTH, IN, OUT, BATCH, LR = 64, 16, 4, 32, 1e-2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-devices", type=int, default=8)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    # Before JAX is imported: this process's simulated CPU devices.
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (
        f"{flags} --xla_force_host_platform_device_count={args.local_devices}"
    ).strip()
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    if args.num_processes > 1:
        # CPU collectives across processes go through gloo; set before initialize.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{args.port}",
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=60,
        )
    try:
        train_all(args.steps)
    finally:
        if args.num_processes > 1:
            jax.distributed.shutdown()


def local_batch(jax, np):
    """This process's rows of a global batch that every process could generate."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, IN)).astype(np.float32)
    y = rng.standard_normal((BATCH, OUT)).astype(np.float32)
    rows = BATCH // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    return x[mine], y[mine]


def train_all(steps: int) -> None:
    import jax
    import numpy as np
    from jax.sharding import Mesh

    import ecliptic as eqx

    print(
        f"process {jax.process_index()} of {jax.process_count()}: "
        f"{jax.local_device_count()} local devices, {jax.device_count()} in all",
        flush=True,
    )
    mesh = Mesh(np.array(jax.devices()), ("data",))
    for name, rules in [("data_parallel", eqx.data_parallel()), ("fsdp", eqx.fsdp())]:
        train(name, mesh, rules, steps)


def train(name: str, mesh, rules, steps: int) -> None:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np
    import optax
    from jax.sharding import NamedSharding, PartitionSpec as P

    import ecliptic as eqx

    model = eqx.nn.MLP(IN, OUT, WIDTH, 2, key=jr.PRNGKey(0))
    plan = eqx.sharding_plan(model, mesh, rules)
    # Every process builds the same model; placing it keeps only the local shards.
    model = eqx.filter_shard(model, plan)
    batch = rules.batch_sharding(mesh)
    x_local, y_local = local_batch(jax, np)
    x = jax.make_array_from_process_local_data(batch, x_local, (BATCH, IN))
    y = jax.make_array_from_process_local_data(batch, y_local, (BATCH, OUT))
    opt = optax.adam(LR)
    # The optimiser state laid out like the parameters (its scalars replicated).
    params = eqx.filter(model, eqx.is_array)
    state_plan = optax.tree_map_params(
        opt,
        lambda _, sharding: sharding,
        jax.eval_shape(opt.init, params),
        plan,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    opt_state = jax.jit(opt.init, out_shardings=state_plan)(params)

    def loss_fn(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        params = eqx.filter(model, eqx.is_array)
        updates, opt_state = opt.update(grads, opt_state, params)
        model = eqx.filter_shard(eqx.apply_updates(model, updates), plan)
        return model, eqx.filter_shard(opt_state, state_plan), loss

    for i in range(steps):
        model, opt_state, loss = step(model, opt_state, x, y)
        print(f"loss {name} {i} {float(loss)!r}", flush=True)
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    shards = sum(leaf.addressable_shards[0].data.size for leaf in leaves)
    total = eqx.filter_jit(lambda ls: sum(jnp.sum(leaf) for leaf in ls))(leaves)
    print(f"params {name} {float(total)!r} {shards}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
