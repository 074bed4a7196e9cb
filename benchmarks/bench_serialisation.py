"""Save/load times: ecliptic vs Equinox, same trees, same process, same disk.

ecliptic's save also computes a CRC32, writes a temporary file, fsyncs it and renames
it into place; its load reads into preallocated buffers and checks every record.

    python benchmarks/bench_serialisation.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import equinox
import jax
import jax.numpy as jnp
import jax.random as jr

import ecliptic


def _trees() -> dict[str, object]:
    big = equinox.nn.MLP(1024, 1024, 2048, 3, key=jr.PRNGKey(0))  # ~10.5M params
    many = [
        {"w": jnp.ones((8, 8)), "b": jnp.zeros(8), "scale": 1.0} for _ in range(500)
    ]
    return {"MLP 42 MB (8 leaves)": big, "1500 small leaves": many}


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _block(tree) -> None:
    jax.block_until_ready(jax.tree.leaves(tree))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"jax {jax.__version__}, equinox {equinox.__version__}, {os.cpu_count()} CPUs"
    )
    print(f"{'tree':24} {'op':5} {'equinox ms':>11} {'ecliptic ms':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as d:
        for name, tree in _trees().items():
            like = jax.tree.map(
                lambda x: (
                    jax.ShapeDtypeStruct(x.shape, x.dtype)
                    if isinstance(x, jax.Array)
                    else x
                ),
                tree,
            )
            paths = {m: os.path.join(d, f"{m}.eqx") for m in ("equinox", "ecliptic")}
            rows = {}
            for mod_name, mod in (("equinox", equinox), ("ecliptic", ecliptic)):
                p = paths[mod_name]
                save = lambda mod=mod, p=p, t=tree: mod.tree_serialise_leaves(p, t)
                load = lambda mod=mod, p=p, like=like: _block(
                    mod.tree_deserialise_leaves(p, like)
                )
                rows[mod_name] = (_median_seconds(save, args.repeat), 0.0)
                rows[mod_name] = (rows[mod_name][0], _median_seconds(load, args.repeat))
            for i, op in enumerate(("save", "load")):
                e, o = rows["equinox"][i] * 1e3, rows["ecliptic"][i] * 1e3
                print(f"{name:24} {op:5} {e:11.1f} {o:12.1f} {o / e:6.2f}")


if __name__ == "__main__":
    main()
