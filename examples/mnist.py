"""A CNN on MNIST, read from the standard idx files in `--data-dir`.

With all four standard files (`train-*` and `t10k-*`, gzipped or not) it trains on the
60,000 training images and tests on the 10,000 test images. With only the `t10k-*`
files it splits those 10,000 images into 8,000 for training and 2,000 for testing.
Nothing is downloaded.

    python examples/mnist.py --data-dir ../shared/data/mnist
    python examples/mnist.py --data-dir ../shared/data/mnist --tiny   # smoke test
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import gzip
import pathlib
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

import ecliptic as eqx


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Reads one idx file (optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(data_dir: pathlib.Path, stem: str) -> pathlib.Path | None:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).exists():
            return data_dir / name
    return None


def load_split(data_dir: pathlib.Path, prefix: str):
    images = find(data_dir, f"{prefix}-images-idx3-ubyte")
    labels = find(data_dir, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        return None
    x = (read_idx(images).astype(np.float32) / 255.0)[:, None, :, :]
    return x, read_idx(labels).astype(np.int32)


def load_mnist(data_dir: pathlib.Path, seed: int):
    """Returns `(x_train, y_train, x_test, y_test)`, images `(N, 1, 28, 28)`."""
    test = load_split(data_dir, "t10k")
    if test is None:
        raise SystemExit(
            f"no MNIST idx files in {data_dir}: expected t10k-images-idx3-ubyte[.gz] "
            "and t10k-labels-idx1-ubyte[.gz] (and optionally the train-* files)"
        )
    train = load_split(data_dir, "train")
    if train is not None:
        return (*train, *test)
    x, y = test
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:8000], perm[8000:]
    return x[tr], y[tr], x[te], y[te]


class CNN(eqx.Module):
    """conv(32) -> pool -> conv(64) -> pool -> linear(128) -> linear(10), one image."""

    layers: eqx.nn.Sequential

    def __init__(self, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.layers = eqx.nn.Sequential(
            [
                eqx.nn.Conv2d(1, 32, kernel_size=3, key=k1),  # (32, 26, 26)
                eqx.nn.Lambda(jax.nn.relu),
                eqx.nn.MaxPool2d(kernel_size=2, stride=2),  # (32, 13, 13)
                eqx.nn.Conv2d(32, 64, kernel_size=3, key=k2),  # (64, 11, 11)
                eqx.nn.Lambda(jax.nn.relu),
                eqx.nn.MaxPool2d(kernel_size=2, stride=2),  # (64, 5, 5)
                eqx.nn.Lambda(jnp.ravel),
                eqx.nn.Linear(64 * 5 * 5, 128, key=k3),
                eqx.nn.Lambda(jax.nn.relu),
                eqx.nn.Linear(128, 10, key=k4),
            ]
        )

    def __call__(self, x: Float[Array, "1 28 28"]) -> Float[Array, "10"]:
        return self.layers(x)


def loss_fn(model, x: Float[Array, "b 1 28 28"], y: Int[Array, " b"]):
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@eqx.filter_jit
def count_correct(model, x, y):
    return jnp.sum(jnp.argmax(jax.vmap(model)(x), axis=-1) == y)


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 1000) -> float:
    correct = sum(
        int(count_correct(model, x[i : i + batch], y[i : i + batch]))
        for i in range(0, len(x), batch)
    )
    return correct / len(x)


def make_step(optim):
    @eqx.filter_jit
    def step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


def train(model, x, y, *, epochs: int, batch_size: int, lr: float, seed: int):
    from tqdm import tqdm

    n_batches = len(x) // batch_size
    optim = optax.adam(optax.cosine_decay_schedule(lr, epochs * n_batches))
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_step(optim)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        perm = rng.permutation(len(x))
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{epochs}")
        for b in bar:
            idx = perm[b * batch_size : (b + 1) * batch_size]
            model, opt_state, loss = step(model, opt_state, x[idx], y[idx])
            if b % 10 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
    return model


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=pathlib.Path,
        default=pathlib.Path("../shared/data/mnist"),
        help="folder with the MNIST idx files (default: ../shared/data/mnist)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="default: 5")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--lr", type=float, default=1e-3, help="default: 1e-3")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="smoke test: 1 epoch on 512 training and 256 test images",
    )
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    start = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_mnist(args.data_dir, args.seed)
    epochs = args.epochs
    if args.tiny:
        x_tr, y_tr, x_te, y_te = x_tr[:512], y_tr[:512], x_te[:256], y_te[:256]
        epochs = 1
    print(f"MNIST: {len(x_tr)} training images, {len(x_te)} test images")
    model = CNN(key=jr.PRNGKey(args.seed))
    model = train(
        model,
        x_tr,
        y_tr,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
    )
    acc = evaluate(model, x_te, y_te)
    seconds = time.perf_counter() - start
    print(f"test accuracy: {acc:.4f} ({epochs} epochs, {seconds:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
