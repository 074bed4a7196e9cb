"""Steady-state training of a small CNN (batch 64): ecliptic vs Equinox vs the floor.

Run: `.venv/bin/python benchmarks/bench_cnn.py [--steps N] [--rounds R]`.

The model is `Conv2d(1, 16, 3) -> relu -> MaxPool2d(2, 2) -> Conv2d(16, 32, 3) -> relu
-> flatten -> Linear(·, 10)` on 28x28 single-channel images, built with each
library's `nn` layers from the same key. A training step is value-and-grad of the
cross-entropy, `optax.adam`, apply the updates, with model and optimiser state fed
back. The floor is a raw `jax.jit` of the same step written on the flat list of array
leaves (model leaves, optimiser-state leaves, images, labels): no PyTree work outside
the compiled function. Each figure is the median, over nine interleaved rounds of
three repeats, of the mean step time of a timed loop that ends by blocking on the
last result.
"""

from __future__ import annotations

import argparse
import statistics
import time

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import optax

import ecliptic


BATCH = 64


class _Defs:
    def __init__(self, lib):
        self.lib = lib

    def make(self, key):
        lib = self.lib
        k1, k2, k3 = jr.split(key, 3)

        class CNN(lib.Module):
            conv1: lib.nn.Conv2d
            pool: lib.nn.MaxPool2d
            conv2: lib.nn.Conv2d
            head: lib.nn.Linear

            def __init__(self):
                self.conv1 = lib.nn.Conv2d(1, 16, 3, key=k1)
                self.pool = lib.nn.MaxPool2d(2, 2)
                self.conv2 = lib.nn.Conv2d(16, 32, 3, key=k2)
                self.head = lib.nn.Linear(32 * 11 * 11, 10, key=k3)

            def __call__(self, x):
                x = self.pool(jax.nn.relu(self.conv1(x)))
                x = jax.nn.relu(self.conv2(x))
                return self.head(x.reshape(-1))

        return CNN()


def _loss(model, x, y):
    logits = jax.vmap(model)(x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _library_step(lib, optim):
    @lib.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = lib.filter_value_and_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state, model)
        return lib.apply_updates(model, updates), opt_state, loss

    return step


def _floor_step(model, opt_state, optim):
    params, static = ecliptic.partition(model, ecliptic.is_array)
    p_leaves, p_def = jtu.tree_flatten(params)
    s_leaves, s_def = jtu.tree_flatten(opt_state)
    n = len(p_leaves)

    @jax.jit
    def step(leaves, x, y):
        params = jtu.tree_unflatten(p_def, leaves[:n])
        opt_state = jtu.tree_unflatten(s_def, leaves[n:])
        model = ecliptic.combine(params, static)
        loss, grads = jax.value_and_grad(
            lambda p: _loss(ecliptic.combine(p, static), x, y)
        )(params)
        updates, opt_state = optim.update(grads, opt_state, model)
        params = optax.apply_updates(params, updates)
        return jtu.tree_leaves(params) + jtu.tree_leaves(opt_state), loss

    return step, p_leaves + s_leaves


def _time(run, steps: int, repeats: int) -> float:
    run(2)  # compile and warm up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        samples.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=9, help="interleaved rounds of every library"
    )
    args = parser.parse_args()
    key = jr.PRNGKey(0)
    x = jr.normal(jr.PRNGKey(1), (BATCH, 1, 28, 28))
    y = jr.randint(jr.PRNGKey(2), (BATCH,), 0, 10)
    optim = optax.adam(1e-3)
    results = {}
    with jax.numpy_dtype_promotion("standard"):
        for name, lib in (("ecliptic", ecliptic), ("equinox", equinox)):
            model = _Defs(lib).make(key)
            state = {"m": model, "s": optim.init(lib.filter(model, lib.is_array))}
            step = _library_step(lib, optim)

            def run(n, state=state, step=step):
                m, s = state["m"], state["s"]
                for _ in range(n):
                    m, s, loss = step(m, s, x, y)
                jax.block_until_ready(loss)
                state["m"], state["s"] = m, s

            results[name] = run
        model = _Defs(ecliptic).make(key)
        floor_step, leaves = _floor_step(
            model, optim.init(ecliptic.filter(model, ecliptic.is_array)), optim
        )
        box = {"leaves": leaves}

        def run_floor(n):
            leaves = box["leaves"]
            for _ in range(n):
                leaves, loss = floor_step(leaves, x, y)
            jax.block_until_ready(loss)
            box["leaves"] = leaves

        results = {"floor": run_floor, **results}
        times = {name: [] for name in results}
        # Many short interleaved rounds, so that background load on a shared machine
        # hits every library alike.
        for _ in range(args.rounds):
            for name, run in results.items():
                times[name].append(_time(run, args.steps, args.repeats))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; CNN, batch {BATCH}")
    print("| | step time (us) | ratio to floor |")
    print("|---|---|---|")
    for name, t in med.items():
        print(f"| {name} | {t:.0f} | {t / med['floor']:.3f}x |")


if __name__ == "__main__":
    main()
