"""Module-system benchmark: ecliptic vs Equinox vs a plain baseline, in one process.

Run: `.venv/bin/python benchmarks/bench_module.py`. Prints medians (microseconds) and
ratios. The model is 100 Linear(64, 64)-like nodes; the baseline is a nested dict of
the same arrays (or a plain frozen dataclass, for instantiation). The baseline, ecliptic
and Equinox are timed in alternating rounds; each ratio is the median over rounds of the
ratio within a round, so a change of load on the machine hits both sides alike.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import equinox
import jax
import jax.numpy as jnp
import numpy as np


sys.path.insert(0, os.path.dirname(__file__))
from _timing import interleaved_us  # noqa: E402

import ecliptic  # noqa: E402


N_LAYERS = 100
WIDTH = 64


def make_model(lib):
    class Linear(lib.Module):
        weight: jax.Array
        bias: jax.Array
        in_features: int = lib.field(static=True)
        out_features: int = lib.field(static=True)

        def __init__(self, weight, bias):
            self.weight = weight
            self.bias = bias
            self.in_features = weight.shape[1]
            self.out_features = weight.shape[0]

        def __call__(self, x):
            return self.weight @ x + self.bias

    class Stack(lib.Module):
        layers: tuple

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    rng = np.random.default_rng(0)
    layers = tuple(
        Linear(
            jnp.asarray(rng.normal(size=(WIDTH, WIDTH)), jnp.float32),
            jnp.asarray(rng.normal(size=(WIDTH,)), jnp.float32),
        )
        for _ in range(N_LAYERS)
    )
    return Stack(layers), Linear


def make_dict(model):
    return {"layers": [{"weight": l.weight, "bias": l.bias} for l in model.layers]}


@dataclasses.dataclass(frozen=True)
class _Pair:
    a: object
    b: object


def _pair_module(lib):
    class Pair(lib.Module):
        a: object
        b: object

        def __init__(self, a, b):
            self.a = a
            self.b = b

    return Pair


def rows():
    models = {
        name: make_model(lib)
        for name, lib in (("ecliptic", ecliptic), ("equinox", equinox))
    }
    d = make_dict(models["ecliptic"][0])
    d_leaves, d_def = jax.tree.flatten(d)
    replacement = jnp.zeros((WIDTH, WIDTH))
    out = []

    def add(name, baseline_name, baseline, **libfns):
        medians, ratios = interleaved_us({"baseline": baseline, **libfns})
        out.append((name, baseline_name, medians, ratios))

    libs = {"ecliptic": ecliptic, "equinox": equinox}
    flat = {n: jax.tree.flatten(m) for n, (m, _) in models.items()}
    add(
        "tree_flatten",
        "dict flatten",
        lambda: jax.tree.flatten(d),
        **{n: (lambda m=m: jax.tree.flatten(m)) for n, (m, _) in models.items()},
    )
    add(
        "tree_unflatten",
        "dict unflatten",
        lambda: d_def.unflatten(d_leaves),
        **{n: (lambda f=f: f[1].unflatten(f[0])) for n, f in flat.items()},
    )
    if hasattr(ecliptic, "partition"):
        is_arr = ecliptic.is_array
        dict_map = lambda: jax.tree.map(lambda x: x if is_arr(x) else None, d)  # noqa: E731
        add(
            "partition",
            "dict tree.map",
            dict_map,
            **{
                n: (lambda m=m, lib=libs[n]: lib.partition(m, lib.is_array))
                for n, (m, _) in models.items()
            },
        )
        add(
            "filter",
            "dict tree.map",
            dict_map,
            **{
                n: (lambda m=m, lib=libs[n]: lib.filter(m, lib.is_array))
                for n, (m, _) in models.items()
            },
        )
        parts = {
            n: libs[n].partition(m, libs[n].is_array) for n, (m, _) in models.items()
        }
        add(
            "combine",
            "dict tree.map",
            dict_map,
            **{n: (lambda p=p, lib=libs[n]: lib.combine(*p)) for n, p in parts.items()},
        )

    if hasattr(ecliptic, "tree_at"):
        # The baseline: ecliptic's own flatten-replace-unflatten of the same model
        # (leaf 100 is `layers[50].weight`: each layer has a weight and a bias).
        def generic(m=models["ecliptic"][0]):
            leaves, treedef = jax.tree.flatten(m)
            leaves[100] = replacement
            return treedef.unflatten(leaves)

        model = models["ecliptic"][0]
        edited = ecliptic.tree_at(lambda t: t.layers[50].weight, model, replacement)
        assert jax.tree.all(jax.tree.map(lambda a, b: a is b, edited, generic()))

        add(
            "tree_at (one leaf)",
            "flatten-replace-unflatten",
            generic,
            **{
                n: (
                    lambda m=m, lib=libs[n]: lib.tree_at(
                        lambda t: t.layers[50].weight, m, replacement
                    )
                )
                for n, (m, _) in models.items()
            },
        )
    pairs = {n: _pair_module(lib) for n, lib in libs.items()}
    add(
        "instantiate 2-field Module",
        "frozen dataclass",
        lambda: _Pair(1, 2),
        **{n: (lambda P=P: P(1, 2)) for n, P in pairs.items()},
    )
    add(
        "model.method access",
        "plain attribute",
        lambda: d_def,
        **{n: (lambda m=m: m.forward) for n, (m, _) in models.items()},
    )
    return out


def main() -> None:
    print(
        f"jax {jax.__version__}, equinox {equinox.__version__}, "
        f"ecliptic {ecliptic.__version__}; {N_LAYERS} Linear({WIDTH}, {WIDTH})"
    )
    header = (
        f"{'operation':28} {'baseline':26} {'base us':>8} {'ecliptic':>9} "
        f"{'equinox':>9} {'ecl/base':>9} {'eqx/base':>9} {'eqx/ecl':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, base_name, t, r in rows():
        e, q = t["ecliptic"], t["equinox"]
        print(
            f"{name:28} {base_name:26} {t['baseline']:8.2f} {e:9.2f} {q:9.2f} "
            f"{r['ecliptic']:8.2f}x {r['equinox']:8.2f}x {q / e:7.1f}x"
        )


if __name__ == "__main__":
    main()
