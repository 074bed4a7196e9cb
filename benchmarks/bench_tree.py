"""Filters and tree tools: ecliptic vs Equinox vs a plain-JAX floor, in one process.

Run: `.venv/bin/python benchmarks/bench_tree.py`. Prints medians (microseconds) and
ratios. The model is 100 Linear(64, 64)-like Modules in a `Stack`; the floor for
`partition` / `filter` / `combine` is a `jax.tree.map` over a nested dict holding the
same arrays, and for `tree_at` a generic flatten-replace-unflatten of the model itself.
Targets: partition/filter/combine within 3x of the floor, one-leaf `tree_at` within 1x.
"""

from __future__ import annotations

import os
import sys

import equinox
import jax
import jax.numpy as jnp


sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_us  # noqa: E402
from bench_module import make_dict, make_model, N_LAYERS, WIDTH  # noqa: E402

import ecliptic  # noqa: E402


LIBS = {"ecliptic": ecliptic, "equinox": equinox}


def _generic_replace(model, index, value):
    leaves, treedef = jax.tree.flatten(model)
    leaves[index] = value
    return treedef.unflatten(leaves)


def rows():
    models = {name: make_model(lib)[0] for name, lib in LIBS.items()}
    d = make_dict(models["ecliptic"])
    is_arr = ecliptic.is_array
    new_w = jnp.zeros((WIDTH, WIDTH))
    new_layer = models["ecliptic"].layers[0]
    out = []

    def add(name, floor_name, floor, make):
        """`make(lib, model)` returns the zero-argument callable to time."""
        base = median_us(floor)
        times = {n: median_us(make(LIBS[n], models[n])) for n in LIBS}
        out.append((name, floor_name, base, times))

    dict_map = lambda: jax.tree.map(lambda x: x if is_arr(x) else None, d)  # noqa: E731
    add(
        "partition(is_array)",
        "dict tree.map",
        dict_map,
        lambda lib, m: lambda: lib.partition(m, lib.is_array),
    )
    add(
        "filter(is_array)",
        "dict tree.map",
        dict_map,
        lambda lib, m: lambda: lib.filter(m, lib.is_array),
    )
    add(
        "filter(inexact, inverse)",
        "dict tree.map",
        dict_map,
        lambda lib, m: lambda: lib.filter(m, lib.is_inexact_array, inverse=True),
    )
    add(
        "combine(params, static)",
        "dict tree.map",
        dict_map,
        lambda lib, m: lambda p=lib.partition(m, lib.is_array): lib.combine(*p),
    )
    model = models["ecliptic"]
    add(
        "tree_at (one leaf)",
        "flatten-replace-unflatten",
        lambda: _generic_replace(model, 100, new_w),
        lambda lib, m: lambda: lib.tree_at(lambda t: t.layers[50].weight, m, new_w),
    )
    add(
        "tree_at (weight, bias)",
        "flatten-replace-unflatten",
        lambda: _generic_replace(model, 100, new_w),
        lambda lib, m: (
            lambda: lib.tree_at(
                lambda t: (t.layers[50].weight, t.layers[50].bias), m, (new_w, None)
            )
        ),
    )
    add(
        "tree_at (one layer)",
        "flatten-replace-unflatten",
        lambda: _generic_replace(model, 100, new_w),
        lambda lib, m: lambda: lib.tree_at(lambda t: t.layers[50], m, new_layer),
    )
    add(
        "tree_at (dict, one leaf)",
        "flatten-replace-unflatten",
        lambda: _generic_replace(d, 100, new_w),
        lambda lib, m: (
            lambda: lib.tree_at(lambda t: t["layers"][50]["weight"], d, new_w)
        ),
    )
    add(
        "apply_updates(None half)",
        "dict tree.map",
        dict_map,
        lambda lib, m: (
            lambda u=lib.filter(m, lib.is_array, inverse=True): lib.apply_updates(m, u)
        ),
    )
    add(
        "tree_flatten_one_level",
        "dict flatten",
        lambda: jax.tree.flatten(d),
        lambda lib, m: lambda: lib.tree_flatten_one_level(m),
    )
    add(
        "tree_check",
        "dict flatten",
        lambda: jax.tree.flatten(d),
        lambda lib, m: lambda: lib.tree_check(m),
    )
    return out


def main() -> None:
    print(
        f"jax {jax.__version__}, equinox {equinox.__version__}, "
        f"ecliptic {ecliptic.__version__}; {N_LAYERS} Linear({WIDTH}, {WIDTH}); "
        f"device {jax.devices()[0].platform}"
    )
    header = (
        f"{'operation':26} {'floor':26} {'floor us':>8} {'ecliptic':>9} "
        f"{'equinox':>9} {'ecl/floor':>9} {'eqx/floor':>9} {'eqx/ecl':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, base_name, base, t in rows():
        e, q = t["ecliptic"], t["equinox"]
        print(
            f"{name:26} {base_name:26} {base:8.1f} {e:9.1f} {q:9.1f} "
            f"{e / base:8.2f}x {q / base:8.2f}x {q / e:7.1f}x"
        )


if __name__ == "__main__":
    main()
