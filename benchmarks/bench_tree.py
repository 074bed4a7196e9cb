"""Filters and tree tools: ecliptic vs Equinox vs a plain-JAX floor, in one process.

Run: `.venv/bin/python benchmarks/bench_tree.py`. Prints medians (microseconds) and
ratios. The model is 100 Linear(64, 64)-like Modules in a `Stack`; the floor for
`partition` / `filter` / `combine` is a `jax.tree.map` over a nested dict holding the
same arrays, and for `tree_at` a generic flatten-replace-unflatten of the model itself.
Targets: partition/filter/combine within 3x of the floor, one-leaf `tree_at` within 1x.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import equinox
import jax
import jax.numpy as jnp


sys.path.insert(0, os.path.dirname(__file__))
from bench_module import make_dict, make_model, N_LAYERS, WIDTH  # noqa: E402

import ecliptic  # noqa: E402


LIBS = {"ecliptic": ecliptic, "equinox": equinox}
ROUNDS = 41


def interleaved_times(fns: dict) -> dict:
    """(median, min) time in us of one call of each function, timed in short loops in
    alternation so that changes in machine load affect them all alike."""
    numbers = {}
    for name, fn in fns.items():
        fn()
        number, start = 1, time.perf_counter()
        while time.perf_counter() - start < 0.002:
            fn()
            number += 1
        numbers[name] = number
    samples = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / numbers[name] * 1e6)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}


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
        fns = {"floor": floor, **{n: make(LIBS[n], models[n]) for n in LIBS}}
        times = interleaved_times(fns)
        out.append((name, floor_name, times.pop("floor"), times))

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
        f"device {jax.devices()[0].platform}; medians of {ROUNDS} interleaved rounds "
        "(last column: ratio of the fastest rounds, less sensitive to load)"
    )
    header = (
        f"{'operation':26} {'floor':26} {'floor us':>8} {'ecliptic':>9} "
        f"{'equinox':>9} {'ecl/floor':>9} {'eqx/floor':>9} {'eqx/ecl':>8} "
        f"{'ecl/floor min':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, base_name, (base, base_min), t in rows():
        (e, e_min), (q, _) = t["ecliptic"], t["equinox"]
        print(
            f"{name:26} {base_name:26} {base:8.1f} {e:9.1f} {q:9.1f} "
            f"{e / base:8.2f}x {q / base:8.2f}x {q / e:7.1f}x {e_min / base_min:12.2f}x"
        )


if __name__ == "__main__":
    main()
