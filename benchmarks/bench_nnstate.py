"""Stateful / normalisation / attention layers: ecliptic vs Equinox, in one process.

Run: `.venv/bin/python benchmarks/bench_nnstate.py`. Prints medians (microseconds) and
the ratio ecliptic / Equinox. Sizes are small on purpose: these numbers measure the
Python work around the XLA computation (construction, State bookkeeping, eager
calls, dispatch of a jitted stateful training step), not the FLOPs, which are the
same XLA programs in both libraries.
"""

from __future__ import annotations

import os
import sys
import warnings

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr


sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_us  # noqa: E402

import ecliptic  # noqa: E402


KEY = jr.PRNGKey(0)


def _bn_model(lib):
    k1, k2 = jr.split(KEY)
    return lib.nn.Sequential(
        [
            lib.nn.Linear(16, 32, key=k1),
            lib.nn.BatchNorm(32, "batch", mode="batch"),
            lib.nn.Lambda(jax.nn.relu),
            lib.nn.Linear(32, 4, key=k2),
        ]
    )


def _train_step(lib, model, state):
    x = jr.normal(KEY, (8, 16))

    @lib.filter_value_and_grad(has_aux=True)
    def loss(model, state):
        out, state = jax.vmap(
            model, axis_name="batch", in_axes=(0, None), out_axes=(0, None)
        )(x, state)
        return jnp.mean(out**2), state

    @lib.filter_jit
    def step(model, state):
        (value, state), grads = loss(model, state)
        updates = jax.tree_util.tree_map(lambda g: -0.01 * g, grads)
        return lib.apply_updates(model, updates), state, value

    return step


def cases(lib) -> dict[str, object]:
    """Name -> zero-argument callable to time."""
    out = {}
    out["make_with_state(BatchNorm model)"] = lambda: lib.nn.make_with_state(_bn_model)(
        lib
    )
    model, state = lib.nn.make_with_state(_bn_model)(lib)
    index = model[1].batch_counter

    def get_set():
        s = jax.tree_util.tree_map(lambda a: a, state)
        s.set(index, s.get(index) + 1)

    out["clone + State.get + State.set"] = get_set
    mha = lib.nn.MultiheadAttention(4, 32, key=KEY)
    x = jr.normal(KEY, (8, 32))
    out["eager MultiheadAttention(4, 32), seq 8"] = lambda: mha(
        x, x, x
    ).block_until_ready()
    ln = lib.nn.LayerNorm(32)
    out["eager LayerNorm(32)"] = lambda: ln(x[0]).block_until_ready()
    cell = lib.nn.GRUCell(32, 32, key=KEY)
    out["eager GRUCell(32, 32)"] = lambda: cell(x[0], x[1]).block_until_ready()
    step = _train_step(lib, model, state)
    carry = {"model": model, "state": state}

    def one_step():
        m, s, v = step(carry["model"], carry["state"])
        carry["model"], carry["state"] = m, s
        v.block_until_ready()

    out["jitted BatchNorm train step (dispatch)"] = one_step
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    print(f"jax {jax.__version__}, equinox {equinox.__version__}, {jax.devices()[0]}")
    ours, theirs = cases(ecliptic), cases(equinox)
    width = max(len(k) for k in ours)
    print("best of 3 alternating rounds of medians, microseconds")
    print(f"{'':{width}}  {'ecliptic':>10}  {'equinox':>10}  {'ratio':>6}")
    for name in ours:
        a, b = [], []
        for _ in range(3):  # alternate, so that load on the machine hits both
            a.append(median_us(ours[name], repeat=7))
            b.append(median_us(theirs[name], repeat=7))
        us, ref = min(a), min(b)
        print(f"{name:{width}}  {us:10.1f}  {ref:10.1f}  {us / ref:6.2f}")


if __name__ == "__main__":
    main()
