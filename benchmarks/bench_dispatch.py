"""filter_jit dispatch benchmark: ecliptic vs Equinox vs Flax NNX vs raw `jax.jit`, side
by side in one process.

Run: `PYTHONPATH=src .venv/bin/python benchmarks/bench_dispatch.py [--quick]`.

The floor is a raw `jax.jit` called on the same flat list of arrays (the model's
leaves plus the inputs). Every figure is the median over repeated timed loops, per
call, in microseconds; the ratio to the floor is in brackets: the median over repeats
of the ratio to the floor's loop *of the same repeat* (paired, as in
`bench_scaling.py`: the libraries take turns in an order rotated from repeat to
repeat, and a slow stretch of a shared machine hits both sides of a ratio), except
for the first call, a ratio of medians. Two clocks: wall time (the loop ends by
blocking on the last result) and the calling thread's CPU time (`time.thread_time`),
which is the Python dispatch cost the caller pays.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from _floors import fed, flat_train_step
from _timing import paired, rotated
from flax import nnx

import ecliptic


WIDTH = 32
BATCH = 16


# --- the same MLP in each library --------------------------------------------------


def _weights(depth: int):
    rng = np.random.default_rng(0)
    return [
        (
            jnp.asarray(rng.normal(size=(WIDTH, WIDTH)) / WIDTH, jnp.float32),
            jnp.asarray(rng.normal(size=(WIDTH,)) / WIDTH, jnp.float32),
        )
        for _ in range(depth)
    ]


def _module_mlp(lib, depth: int):
    class Linear(lib.Module):
        weight: jax.Array
        bias: jax.Array

        def __call__(self, x):
            return self.weight @ x + self.bias

    class MLP(lib.Module):
        layers: list
        activation: Callable = lib.field(static=True)

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = self.activation(layer(x))
            return self.layers[-1](x)

    return MLP([Linear(w, b) for w, b in _weights(depth)], jax.nn.tanh)


def _nnx_mlp(depth: int):
    class MLP(nnx.Module):
        def __init__(self):
            layers = []
            for w, b in _weights(depth):
                lin = nnx.Linear(WIDTH, WIDTH, rngs=nnx.Rngs(0))
                lin.kernel.value = w.T
                lin.bias.value = b
                layers.append(lin)
            self.layers = nnx.List(layers)

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.tanh(layer(x))
            return self.layers[-1](x)

    return MLP()


# --- timing ------------------------------------------------------------------------


Timed = tuple[dict[str, float], dict[str, float]]


def _timed(
    calls: dict[str, Callable[[], object]], numbers: dict[str, int], repeat: int
) -> tuple[Timed, Timed]:
    """`(wall, thread CPU)`, each `(medians, ratios)` (`_timing.paired`) of the
    microseconds per call of every entry of `calls`. The libraries take turns within
    each repeat, in an order rotated from repeat to repeat, so that load from other
    processes on a shared machine hits them alike, and each ratio pairs a library's
    loop with the floor's loop of the same repeat."""
    for name, call in calls.items():
        for _ in range(max(3, numbers[name] // 10)):
            out = call()
        jax.block_until_ready(out)
    walls: dict[str, list[float]] = {name: [] for name in calls}
    cpus: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeat):
        for name in rotated(names, r):
            call, number = calls[name], numbers[name]
            w0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(number):
                out = call()
            jax.block_until_ready(out)
            walls[name].append((time.perf_counter() - w0) / number * 1e6)
            cpus[name].append((time.thread_time() - c0) / number * 1e6)
    return paired(walls, "floor"), paired(cpus, "floor")


def _pytree_cost(inputs, outputs) -> float:
    """Microseconds to flatten `inputs` and unflatten `outputs`: the PyTree work that
    any filtered call must do and that the flat-list floor skips."""
    out_leaves, out_def = jtu.tree_flatten(outputs)

    def work():
        jtu.tree_flatten(inputs)
        jtu.tree_unflatten(out_def, out_leaves)

    number = 2000
    samples = []
    for _ in range(7):
        start = time.thread_time()
        for _ in range(number):
            work()
        samples.append((time.thread_time() - start) / number * 1e6)
    return statistics.median(samples)


def _forward_calls(depth: int):
    x = jnp.ones(WIDTH)
    ecl, eqm, nnm = (
        _module_mlp(ecliptic, depth),
        _module_mlp(eqx, depth),
        _nnx_mlp(depth),
    )
    leaves, treedef = jtu.tree_flatten((ecl, x))
    floor = jax.jit(
        lambda flat: (lambda m, x: m(x))(*jtu.tree_unflatten(treedef, flat))
    )
    f_ecl = ecliptic.filter_jit(lambda m, x: m(x))
    f_eqx = eqx.filter_jit(lambda m, x: m(x))
    f_nnx = nnx.jit(lambda m, x: m(x))
    calls = {
        "floor": lambda: floor(leaves),
        "ecliptic": lambda: f_ecl(ecl, x),
        "equinox": lambda: f_eqx(eqm, x),
        "nnx": lambda: f_nnx(nnm, x),
    }
    return calls, _pytree_cost(((ecl, x), {}), f_ecl(ecl, x))


def _loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _train_step(model, opt_state, x, y, opt, value_and_grad=jax.value_and_grad):
    loss, grads = value_and_grad(_loss)(model, x, y)
    updates, opt_state = opt.update(grads, opt_state, model)
    return optax.apply_updates(model, updates), opt_state, loss


def _module_train(lib, depth, x, y, opt):
    model = _module_mlp(lib, depth)
    state = [model, opt.init(model)]
    vg = lib.filter_value_and_grad
    step = lib.filter_jit(lambda m, s, x, y: _train_step(m, s, x, y, opt, vg))

    def call():
        state[0], state[1], loss = step(state[0], state[1], x, y)
        return loss

    return call


def _floor_train(depth, x, y, opt):
    model = _module_mlp(ecliptic, depth)
    opt_state = opt.init(model)
    m_leaves, m_def = jtu.tree_flatten(model)
    s_leaves, s_def = jtu.tree_flatten(opt_state)

    @jax.jit
    def step(m_leaves, s_leaves, x, y):
        m = jtu.tree_unflatten(m_def, m_leaves)
        s = jtu.tree_unflatten(s_def, s_leaves)
        m, s, loss = _train_step(m, s, x, y, opt)
        return jtu.tree_leaves(m), jtu.tree_leaves(s), loss

    state = [m_leaves, s_leaves]

    def call():
        state[0], state[1], loss = step(state[0], state[1], x, y)
        return loss

    return call


def _nnx_train(depth, x, y, opt):
    model = _nnx_mlp(depth)
    optimizer = nnx.Optimizer(model, opt, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(_loss)(model, x, y)
        optimizer.update(model, grads)
        return loss

    return lambda: step(model, optimizer, x, y)


def _train_calls(depth: int):
    x = jnp.ones((BATCH, WIDTH))
    y = jnp.zeros((BATCH, WIDTH))
    opt = optax.adam(1e-3)
    calls = {
        "floor": _floor_train(depth, x, y, opt),
        "ecliptic": _module_train(ecliptic, depth, x, y, opt),
        "equinox": _module_train(eqx, depth, x, y, opt),
        "nnx": _nnx_train(depth, x, y, opt),
    }
    model = _module_mlp(ecliptic, depth)
    state = opt.init(model)
    return calls, _pytree_cost((model, state, x, y), (model, state, jnp.zeros(())))


# --- the canonical training step (the README's loop, as Equinox users write it) ----

CANON_IN, CANON_BATCH = 2, 256


def _canonical(lib, key: int):
    """`lib.nn.MLP` (depth 3, width 64), `optax.adam`, `lib.filter(model,
    lib.is_array)` for the optimiser state, a `lib.filter_jit` step calling
    `filter_value_and_grad` and `apply_updates`, returning `(model, opt_state,
    loss)`."""
    model = lib.nn.MLP(CANON_IN, 1, 64, 3, key=jax.random.PRNGKey(key))
    optim = optax.adam(1e-2)
    opt_state = optim.init(lib.filter(model, lib.is_array))

    @lib.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = lib.filter_value_and_grad(_canonical_loss)(model, x, y)
        updates, opt_state = optim.update(grads, opt_state)
        return lib.apply_updates(model, updates), opt_state, loss

    return step, [model, opt_state]


def _canonical_loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def _canonical_floor(key: int, width: int = 64):
    """The same step under `jax.jit` on the flat list of the model's arrays."""
    model = ecliptic.nn.MLP(CANON_IN, 1, width, 3, key=jax.random.PRNGKey(key))
    return flat_train_step(model, optax.adam(1e-2), _canonical_loss)


def _alternate(step, a, b, x, y):
    """Two models (of two structures) through one step function, in turn."""
    turn = [0]

    def call():
        state = a if turn[0] == 0 else b
        turn[0] ^= 1
        state[0], state[1], loss = step(state[0], state[1], x, y)
        return loss

    return call


def _canonical_calls(alternate: bool):
    x = jax.random.normal(jax.random.PRNGKey(1), (CANON_BATCH, CANON_IN))
    y = jnp.sin(x[:, :1])
    calls = {}
    f_step, f_state = _canonical_floor(0)
    if alternate:
        g_step, g_state = _canonical_floor(2, 32)
        # The same two models, each under a plain jax.jit of its own.
        calls["floor"] = _alternate_two(
            fed(f_step, f_state, x, y), fed(g_step, g_state, x, y)
        )
    else:
        calls["floor"] = fed(f_step, f_state, x, y)
    for name, lib in (("ecliptic", ecliptic), ("equinox", eqx)):
        step, state = _canonical(lib, 0)
        if alternate:
            # A second model of another structure (width 32) through the same step.
            other = lib.nn.MLP(CANON_IN, 1, 32, 3, key=jax.random.PRNGKey(2))
            optim_state = optax.adam(1e-2).init(lib.filter(other, lib.is_array))
            calls[name] = _alternate(step, state, [other, optim_state], x, y)
        else:
            calls[name] = fed(step, state, x, y)
    return calls


def _alternate_two(a, b):
    turn = [0]

    def call():
        turn[0] ^= 1
        return a() if turn[0] else b()

    return call


def _chain(m):
    for _ in range(8):
        m = jnp.tanh(m @ m)
    return m


def _time_to_return(repeat: int) -> Timed:
    """Microseconds until the call returns (not until the result is ready): medians
    and paired ratios (`_timing.paired`)."""
    m = jnp.ones((1024, 1024)) / 1024
    fns = {
        "floor": jax.jit(_chain),
        "ecliptic": ecliptic.filter_jit(_chain),
        "equinox": eqx.filter_jit(_chain),
        "nnx": nnx.jit(_chain),
    }
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        jax.block_until_ready(fn(m))
    names = list(fns)
    for r in range(repeat):
        for name in rotated(names, r):
            start = time.perf_counter()
            result = fns[name](m)
            samples[name].append((time.perf_counter() - start) * 1e6)
            jax.block_until_ready(result)
    return paired(samples, "floor")


def _first_call(repeat: int) -> dict[str, float]:
    x = jnp.ones(WIDTH)
    ecl, eqm, nnm = _module_mlp(ecliptic, 20), _module_mlp(eqx, 20), _nnx_mlp(20)
    leaves, treedef = jtu.tree_flatten((ecl, x))
    samples: dict[str, list[float]] = {
        k: [] for k in ("floor", "ecliptic", "equinox", "nnx")
    }
    for _ in range(repeat):
        # Fresh functions each round, so every library traces and compiles anew.
        calls = {
            "floor": (
                jax.jit(lambda f: (lambda m, x: m(x))(*jtu.tree_unflatten(treedef, f))),
                (leaves,),
            ),
            "ecliptic": (ecliptic.filter_jit(lambda m, x: m(x)), (ecl, x)),
            "equinox": (eqx.filter_jit(lambda m, x: m(x)), (eqm, x)),
            "nnx": (nnx.jit(lambda m, x: m(x)), (nnm, x)),
        }
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            samples[name].append((time.perf_counter() - start) * 1e6)
    return {k: statistics.median(v) for k, v in samples.items()}


# --- report ------------------------------------------------------------------------

_COLUMNS = ("floor", "ecliptic", "equinox", "nnx")


def _row(
    label: str,
    values: dict[str, float],
    ratios: dict[str, float] | None = None,
    extra: str = "",
) -> str:
    """A table row: each library's median and, in brackets, its ratio to the floor
    (`ratios`, paired; else the ratio of the medians)."""
    if ratios is None:
        ratios = {k: v / values["floor"] for k, v in values.items()}
    cells = [f"{values['floor']:.1f}"]
    cells += [f"{values[k]:.1f} ({ratios[k]:.2f}x)" for k in _COLUMNS[1:]]
    return f"| {label} | " + " | ".join(cells) + f" | {extra} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    opts = parser.parse_args()
    repeat = 5 if opts.quick else 11
    print(
        f"jax {jax.__version__}, device {jax.devices()[0].device_kind}, "
        f"equinox {eqx.__version__}, flax {__import__('flax').__version__}"
    )
    print(
        "| row | jax.jit floor | ecliptic | Equinox | Flax NNX | "
        "PyTree flatten+unflatten (in ecliptic's figure) |"
    )
    print("|---|---|---|---|---|---|")
    checks = []
    for kind, make, number in (
        ("forward", _forward_calls, 400),
        ("train step", _train_calls, 200),
    ):
        for depth in (3, 20):
            calls, pytree = make(depth)
            numbers = {
                k: number // 4 if k in ("equinox", "nnx") else number for k in calls
            }
            wall, cpu = _timed(calls, numbers, repeat)
            label = f"{kind}, depth {depth}"
            print(_row(f"{label}: wall us", *wall))
            print(_row(f"{label}: thread CPU us", *cpu, extra=f"{pytree:.1f}"))
            checks.append((f"{label} wall", wall[1]["ecliptic"], 1.25))
            checks.append((f"{label} CPU", cpu[1]["ecliptic"], 1.5))
    for label, alternate in (
        ("canonical train step (README loop)", False),
        ("canonical train step, two models in turn", True),
    ):
        calls = _canonical_calls(alternate)
        numbers = {"floor": 200, "ecliptic": 200, "equinox": 50}
        wall, cpu = _timed(calls, numbers, repeat)
        for medians, ratios in (wall, cpu):
            medians["nnx"] = ratios["nnx"] = float("nan")
        print(_row(f"{label}: wall us", *wall))
        print(_row(f"{label}: thread CPU us", *cpu))
        checks.append((f"{label} wall", wall[1]["ecliptic"], 1.15))
        checks.append((f"{label} CPU", cpu[1]["ecliptic"], 1.3))
    ttr = _time_to_return(3 * repeat)
    print(_row("time to return, 8 x 1024^2 matmul chain: us", *ttr))
    checks.append(("time to return", ttr[1]["ecliptic"], 2.0))
    first = _first_call(3 if opts.quick else 5)
    print(_row("first call (trace + compile), depth 20: us", first))
    print()
    for label, ratio, target in checks:
        status = "ok" if ratio <= target else "MISSED"
        print(f"{label}: ecliptic {ratio:.2f}x floor (target <= {target}x) {status}")


if __name__ == "__main__":
    main()
