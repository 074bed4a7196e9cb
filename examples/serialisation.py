"""Save a model's hyperparameters and weights in one file, and load it back.

The file starts with one line of JSON (the hyperparameters), followed by the
weights written by `eqx.tree_serialise_leaves` to the same open file. To load,
read the JSON line, build a model skeleton of the right shape with
`eqx.filter_eval_shape` (no weights are initialised), then fill it with
`eqx.tree_deserialise_leaves`.

    python examples/serialisation.py --out-dir /tmp/ckpt
    python examples/serialisation.py --tiny   # smoke test
"""

import argparse
import json
import pathlib
import tempfile

import jax.numpy as jnp
import jax.random as jr

import ecliptic as eqx


def make(*, key, in_size: int, out_size: int, width_size: int, depth: int):
    """Builds the model from its hyperparameters."""
    return eqx.nn.MLP(in_size, out_size, width_size, depth, key=key)


def save(path: pathlib.Path, hyperparams: dict, model) -> None:
    with open(path, "wb") as f:
        f.write((json.dumps(hyperparams) + "\n").encode())
        eqx.tree_serialise_leaves(f, model)


def load(path: pathlib.Path):
    with open(path, "rb") as f:
        hyperparams = json.loads(f.readline().decode())
        # A skeleton with `jax.ShapeDtypeStruct` leaves: no memory, no random draws.
        like = eqx.filter_eval_shape(make, key=jr.PRNGKey(0), **hyperparams)
        return hyperparams, eqx.tree_deserialise_leaves(f, like)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=pathlib.Path,
        default=None,
        help="where model.eqx goes (default: a temporary folder)",
    )
    parser.add_argument("--width-size", type=int, default=64, help="default: 64")
    parser.add_argument("--depth", type=int, default=3, help="default: 3")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--tiny", action="store_true", help="smoke test: width 4")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    hyperparams = {
        "in_size": 3,
        "out_size": 2,
        "width_size": 4 if args.tiny else args.width_size,
        "depth": args.depth,
    }
    model = make(key=jr.PRNGKey(args.seed), **hyperparams)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out_dir or pathlib.Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.eqx"
        save(path, hyperparams, model)
        loaded_hyperparams, loaded = load(path)
        print(f"saved and loaded {path} ({path.stat().st_size} bytes)")

    x = jnp.linspace(0.0, 1.0, 3)
    same = bool(jnp.array_equal(model(x), loaded(x)))
    print(f"hyperparameters: {loaded_hyperparams}")
    print(f"outputs identical after loading: {same}")
    if loaded_hyperparams != hyperparams or not same:
        raise SystemExit("round trip failed")


if __name__ == "__main__":
    main()
