"""Dispatch overhead against model size: ecliptic vs Equinox vs Flax NNX vs `jax.jit`.

Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_scaling.py [--quick]
[--depths 3 10 30 100 300 1000] [--plot benchmarks/scaling.png]`.

The model is a stack of `depth` `nn.Linear(4, 4)` layers (two array leaves each) in a
Module with a tuple of layers and two static fields (an activation function and an
int), so compute is negligible and what is timed is the per-call overhead. Three rows
per depth:

- **forward**: `filter_jit(lambda m, x: m(x))(model, x)`, the same model object each
  call (inference);
- **model call**: `filter_jit(model)(x)` (the model is the jitted function; its
  arrays are traced, not baked in), with the same floor as forward;
- **train step**: the canonical Equinox step (`filter_value_and_grad`, `optax.adam`
  on `filter(model, is_array)`, `apply_updates`), model and optimiser state fed back,
  so each call brings new objects of the same structure.

The floor is a raw `jax.jit` of the same function on the flat list of array leaves
(for the step: optax state of that list). Every call is timed *interleaved*: each
timed loop alternates the library's call with a small unrelated `jax.jit` call (as
any program does between steps: metrics, data preparation), and the libraries take
turns within each round, in an order rotated from round to round. Each time is the
median over rounds of the mean time of a loop that ends by blocking on the last result
(wall time, microseconds per call; the unrelated call's own time, measured alone in the
same round, is subtracted); each ratio is the median over rounds of the ratio to the
floor in the same round (paired: a training step's time drifts by 10-30% over a run on
a 2-core machine, as XLA's threads and the collector share the cores, and pairing
keeps that drift out of the ratio). The script prints a
table with the ratio to the floor and the overhead per array leaf above the floor,
and writes a plot of the ratio against the number of leaves.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import optax
from _floors import fed, flat_train_step
from _timing import paired, rotated

import ecliptic


def _stack(lib, depth: int):
    class Stack(lib.Module):
        layers: tuple
        activation: Callable
        scale: int = lib.field(static=True)

        def __call__(self, x):
            for layer in self.layers:
                x = self.activation(layer(x))
            return x * self.scale

    keys = jr.split(jr.PRNGKey(0), depth)
    layers = tuple(lib.nn.Linear(4, 4, key=k) for k in keys)
    return Stack(layers, jax.nn.tanh, 1)


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _forward(lib, depth: int, x):
    model = _stack(lib, depth)
    f = lib.filter_jit(lambda m, x: m(x))
    return lambda: f(model, x)


def _model_call(lib, depth: int, x):
    f = lib.filter_jit(_stack(lib, depth))
    return lambda: f(x)


def _step(lib, depth: int, x, y):
    model = _stack(lib, depth)
    optim = optax.adam(1e-3)
    opt_state = optim.init(lib.filter(model, lib.is_array))

    @lib.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = lib.filter_value_and_grad(_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state)
        return lib.apply_updates(model, updates), opt_state, loss

    return fed(step, [model, opt_state], x, y)


def _floor_forward(depth: int, x):
    model = _stack(ecliptic, depth)
    params, static = ecliptic.partition(model, ecliptic.is_array)
    leaves, treedef = jtu.tree_flatten(params)
    f = jax.jit(
        lambda leaves, x: ecliptic.combine(jtu.tree_unflatten(treedef, leaves), static)(
            x
        )
    )
    return lambda: f(leaves, x)


def _floor_step(depth: int, x, y):
    step, state = flat_train_step(_stack(ecliptic, depth), optax.adam(1e-3), _loss)
    return fed(step, state, x, y)


def _nnx_forward(depth: int, x):
    from flax import nnx

    class Stack(nnx.Module):
        def __init__(self):
            self.layers = nnx.List(
                [nnx.Linear(4, 4, rngs=nnx.Rngs(i)) for i in range(depth)]
            )

        def __call__(self, x):
            for layer in self.layers:
                x = jnp.tanh(layer(x))
            return x

    model = Stack()
    f = nnx.jit(lambda m, x: m(x))
    return lambda: f(model, x)


def _interleaved(
    calls: dict[str, Callable[[], object]], number: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median over rounds of the mean wall time per call (microseconds), each call
    followed by an unrelated small `jax.jit` call whose own cost (timed alone in the
    same round) is subtracted; and the median over rounds of each library's ratio to
    the floor *in the same round* (paired, so that load and the state of the
    machine, which drift from round to round, hit both sides of a ratio alike).
    The libraries take turns in an order rotated from round to round."""
    v = jnp.ones(8)
    other = jax.jit(lambda v: v * 2.0 + 1.0)
    for call in [*calls.values(), lambda: other(v)]:
        for _ in range(5):
            out = call()
        jax.block_until_ready(out)

    def loop(call, n):
        start = time.perf_counter()
        for _ in range(n):
            out = call()
            other(v)
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / n * 1e6

    names = list(calls)
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            out = other(v)
        jax.block_until_ready(out)
        alone = (time.perf_counter() - start) / number * 1e6
        for name in rotated(names, r):
            samples[name].append(loop(calls[name], number) - alone)
    return paired(samples, "floor")


def _calls(kind: str, depth: int, with_nnx: bool):
    x = jnp.ones(4)
    if kind == "model call":
        return {
            "floor": _floor_forward(depth, x),
            "ecliptic": _model_call(ecliptic, depth, x),
            "equinox": _model_call(equinox, depth, x),
        }
    if kind == "forward":
        calls = {
            "floor": _floor_forward(depth, x),
            "ecliptic": _forward(ecliptic, depth, x),
            "equinox": _forward(equinox, depth, x),
        }
        if with_nnx:
            calls["nnx"] = _nnx_forward(depth, x)
        return calls
    xs, ys = jnp.ones((8, 4)), jnp.zeros((8, 4))
    return {
        "floor": _floor_step(depth, xs, ys),
        "ecliptic": _step(ecliptic, depth, xs, ys),
        "equinox": _step(equinox, depth, xs, ys),
    }


def _plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"ecliptic": "-", "equinox": "--", "nnx": ":"}
    for kind, marker in (("forward", "o"), ("model call", "^"), ("train step", "s")):
        for lib, style in styles.items():
            pts = [
                (r["leaves"], r[lib] / r["floor"]) for r in rows if r["kind"] == kind
            ]
            pts = [p for p in pts if p[1] == p[1]]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, marker=marker, label=f"{lib}, {kind}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("array leaves in the model")
    ax.set_ylabel("time per call / jax.jit floor")
    ax.set_title("filter_jit dispatch overhead, interleaved calls (CPU)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--depths", type=int, nargs="+", default=[3, 10, 30, 100, 300, 1000]
    )
    parser.add_argument(
        "--kinds", nargs="+", default=["forward", "model call", "train step"]
    )
    parser.add_argument("--plot", default="benchmarks/scaling.png")
    parser.add_argument("--no-nnx", action="store_true")
    opts = parser.parse_args()
    rounds = 7 if opts.quick else 15
    print(f"jax {jax.__version__}, equinox {equinox.__version__}; wall us per call")
    print("| row | leaves | floor | ecliptic | Equinox | Flax NNX | ecliptic us/leaf |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for kind in opts.kinds:
        for depth in opts.depths:
            calls = _calls(kind, depth, not opts.no_nnx)
            # Calls per timed loop: about 10-20 ms of the floor's time at every
            # depth (the small rows were capped at 200 calls, 2-4 ms, until session
            # 9, which left their medians at the mercy of the VM's noise).
            number = max(5, min(1000, 20000 // (depth + 20)))
            t, ratio = _interleaved(calls, number, rounds)
            leaves = 2 * depth
            row = {"kind": kind, "depth": depth, "leaves": leaves, "nnx": float("nan")}
            row.update(ratio)
            rows.append(row)
            floor = t["floor"]

            def cell(name, t=t, ratio=ratio):
                if name not in t:
                    return "not measured"
                return f"{t[name]:.0f} ({ratio[name]:.2f}x)"

            per_leaf = (t["ecliptic"] - floor) / leaves
            print(
                f"| {kind}, depth {depth} | {leaves} | {floor:.0f} | "
                f"{cell('ecliptic')} | {cell('equinox')} | {cell('nnx')} | "
                f"{per_leaf:.3f} |",
                flush=True,
            )
    if opts.plot:
        _plot(rows, opts.plot)
        print(f"plot: {opts.plot}")


if __name__ == "__main__":
    main()
