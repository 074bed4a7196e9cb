"""Filtered-transformation overhead: ecliptic vs Equinox vs raw JAX, in one process.

Run: `.venv/bin/python benchmarks/bench_transforms.py`. Prints medians (microseconds)
of one eager (un-jitted) call and ratios. Both libraries transform the *same* model
(an Equinox MLP, 4 layers of width 16, with activation functions as non-array
leaves), so only the transformation's own Python work differs. The baseline is the
raw JAX transformation applied to the model's flat array leaves.
"""

from __future__ import annotations

import os
import sys

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr


sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_us  # noqa: E402

import ecliptic  # noqa: E402


def _setup():
    model = equinox.nn.MLP(8, 8, 16, 4, key=jr.PRNGKey(0))
    params, static = equinox.partition(model, equinox.is_array)
    leaves, treedef = jax.tree.flatten(params)
    x = jnp.ones(8)
    xs = jnp.ones((32, 8))

    def loss(m, x):
        return jnp.sum(m(x) ** 2)

    def flat_loss(leaves, x):
        m = equinox.combine(jax.tree.unflatten(treedef, leaves), static)
        return loss(m, x)

    return model, leaves, x, xs, loss, flat_loss


def rows():
    model, leaves, x, xs, loss, flat_loss = _setup()
    out = []

    def add(name, baseline, ours, theirs):
        out.append((name, median_us(baseline), median_us(ours), median_us(theirs)))

    add(
        "grad (eager)",
        lambda: jax.grad(flat_loss)(leaves, x),
        lambda: ecliptic.filter_grad(loss)(model, x),
        lambda: equinox.filter_grad(loss)(model, x),
    )
    add(
        "vmap (eager)",
        lambda: jax.vmap(flat_loss, in_axes=(None, 0))(leaves, xs),
        lambda: ecliptic.filter_vmap(loss, in_axes=(None, 0))(model, xs),
        lambda: equinox.filter_vmap(loss, in_axes=(None, 0))(model, xs),
    )
    no_tangent = jax.tree.map(lambda _: None, model)
    add(
        "jvp (eager)",
        lambda: jax.jvp(lambda v: v * 2, (x,), (x,)),
        lambda: ecliptic.filter_jvp(lambda v, m: v * 2, (x, model), (x, no_tangent)),
        lambda: equinox.filter_jvp(lambda v, m: v * 2, (x, model), (x, no_tangent)),
    )
    pm_ours = ecliptic.filter_pmap(loss, in_axes=(None, 0))
    pm_theirs = equinox.filter_pmap(loss, in_axes=(None, 0))
    pm_raw = jax.pmap(flat_loss, in_axes=(None, 0))
    x1 = xs[:1]
    add(
        "pmap (cached call, 1 device)",
        lambda: jax.block_until_ready(pm_raw(leaves, x1)),
        lambda: jax.block_until_ready(pm_ours(model, x1)),
        lambda: jax.block_until_ready(pm_theirs(model, x1)),
    )
    return out


def main() -> None:
    print(f"jax {jax.__version__}, equinox {equinox.__version__}, {jax.devices()[0]}")
    header = (
        f"{'case':<30}{'raw JAX us':>12}{'ecliptic us':>13}{'equinox us':>12}"
        f"{'ecl/raw':>9}{'ecl/eqx':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, raw, ours, theirs in rows():
        print(
            f"{name:<30}{raw:>12.1f}{ours:>13.1f}{theirs:>12.1f}"
            f"{ours / raw:>9.2f}{ours / theirs:>9.2f}"
        )


if __name__ == "__main__":
    main()
