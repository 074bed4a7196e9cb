"""The demo: a small CNN on scikit-learn's 8x8 digits, trained on the CPU in seconds.

Trains with optax and a tqdm progress bar (loss and accuracy), reports held-out
accuracy, saves a checkpoint with `eqx.tree_serialise_leaves`, loads it into a fresh
model and checks the predictions are identical, and writes a PNG of the training
curves.

With `--precision bfloat16` or `--precision float16` the model is wrapped in
`eqx.MixedPrecision`: float32 master weights for optax, the CNN run in the half
precision; float16 adds a `DynamicLossScale` and skips the steps whose gradients
overflow.

    python examples/digits.py                 # the demo (`make demo`)
    python examples/digits.py --epochs 2 --out-dir /tmp/digits
    python examples/digits.py --precision bfloat16
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import pathlib
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

import ecliptic as eqx


class CNN(eqx.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers.

    Like every ecliptic layer, the model acts on **one** image; `jax.vmap` batches it.
    """

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    pool: eqx.nn.MaxPool2d
    hidden: eqx.nn.Linear
    output: eqx.nn.Linear

    def __init__(self, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.conv1 = eqx.nn.Conv2d(1, 16, kernel_size=3, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv2d(16, 32, kernel_size=3, padding=1, key=k2)
        self.pool = eqx.nn.MaxPool2d(kernel_size=2, stride=2)
        self.hidden = eqx.nn.Linear(32 * 4 * 4, 64, key=k3)
        self.output = eqx.nn.Linear(64, 10, key=k4)

    def __call__(self, x: Float[Array, "1 8 8"]) -> Float[Array, "10"]:
        """**Arguments:** `x`: one image, shape `(1, 8, 8)`.

        **Returns:** the ten class logits, shape `(10,)`.
        """
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        x = self.pool(x)
        x = jax.nn.relu(self.hidden(jnp.ravel(x)))
        return self.output(x)


def build_model(key: PRNGKeyArray, precision: str) -> eqx.Module:
    """The CNN, wrapped in `eqx.MixedPrecision` for a half-precision `precision`."""
    model = CNN(key=key)
    if precision == "float32":
        return model
    return eqx.MixedPrecision(model, eqx.Policy(compute_dtype=precision))


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns `(x_train, y_train, x_test, y_test)`: images `(N, 1, 8, 8)` in [0, 1]
    and integer labels `(N,)`, with a stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    return x_tr, y_tr, x_te, y_te


def loss_fn(
    model: CNN, x: Float[Array, "batch 1 8 8"], y: Int[Array, " batch"]
) -> Float[Array, ""]:
    """Mean cross-entropy over a batch; the model is mapped with `jax.vmap`."""
    logits = jax.vmap(model)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@eqx.filter_jit
def accuracy(model: CNN, x: Float[Array, "n 1 8 8"], y: Int[Array, " n"]):
    return jnp.mean(jnp.argmax(jax.vmap(model)(x), axis=-1) == y)


@eqx.filter_jit
def predict(model: CNN, x: Float[Array, "n 1 8 8"]) -> Float[Array, "n 10"]:
    return jax.vmap(model)(x)


def random_shift(
    x: Float[Array, "batch 1 8 8"], key: PRNGKeyArray
) -> Float[Array, "batch 1 8 8"]:
    """Data augmentation: shifts each image by up to one pixel in each direction."""
    offsets = jr.randint(key, (x.shape[0], 2), 0, 3)
    padded = jnp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))

    def shift_one(img, offset):
        return jax.lax.dynamic_slice(img, (0, offset[0], offset[1]), (1, 8, 8))

    return jax.vmap(shift_one)(padded, offsets)


def make_step(optim: optax.GradientTransformation):
    """One training step for every precision: the loss is multiplied by the loss
    scale before differentiating (`eqx.NoLossScale` does nothing), the gradients are
    divided by it, and a step whose gradients are not finite changes neither the
    model nor the optimiser state (only the loss scale, which it halves)."""

    @eqx.filter_jit
    def step(model, opt_state, loss_scale, x, y, key):
        x = random_shift(x, key)

        def scaled_loss(model, x, y):
            loss = loss_fn(model, x, y)
            return loss_scale.scale_loss(loss), loss

        grads, loss = eqx.filter_grad(scaled_loss, has_aux=True)(model, x, y)
        grads = loss_scale.unscale(grads)
        finite = eqx.all_finite(grads)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, new_opt_state = optim.update(grads, opt_state, params)
        new_model = eqx.apply_updates(model, updates)

        def keep(new, old):  # the old value on a skipped step
            return jnp.where(finite, new, old) if eqx.is_array(new) else new

        new = (new_model, new_opt_state)
        model, opt_state = jax.tree.map(keep, new, (model, opt_state))
        return model, opt_state, loss_scale.adjust(finite), loss, finite

    return step


def train(
    model,
    data,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    loss_scale=None,
):
    """Trains `model`; returns it with a history dict of per-epoch curves (and, under
    `"skipped"` and `"loss_scale"`, the number of skipped steps and the last scale).
    """
    from tqdm import tqdm

    x_tr, y_tr, x_te, y_te = data
    n_batches = len(x_tr) // batch_size
    schedule = optax.cosine_decay_schedule(lr, decay_steps=epochs * n_batches)
    optim = optax.adamw(schedule, weight_decay=1e-4)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_step(optim)
    loss_scale = eqx.NoLossScale() if loss_scale is None else loss_scale
    finites = []
    rng = np.random.default_rng(seed)
    key = jr.PRNGKey(seed + 2)
    history = {"loss": [], "train_acc": [], "test_acc": []}
    bar = tqdm(range(epochs), desc="digits", unit="epoch")
    for _ in bar:
        perm = rng.permutation(len(x_tr))
        losses = []
        for b in range(n_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            key, subkey = jr.split(key)
            model, opt_state, loss_scale, loss, finite = step(
                model, opt_state, loss_scale, x_tr[idx], y_tr[idx], subkey
            )
            losses.append(loss)
            finites.append(finite)
        history["loss"].append(float(jnp.mean(jnp.stack(losses))))
        history["train_acc"].append(float(accuracy(model, x_tr, y_tr)))
        history["test_acc"].append(float(accuracy(model, x_te, y_te)))
        bar.set_postfix(
            loss=f"{history['loss'][-1]:.4f}",
            train_acc=f"{history['train_acc'][-1]:.3f}",
            test_acc=f"{history['test_acc'][-1]:.3f}",
        )
    history["skipped"] = int(np.sum(~np.asarray(finites)))
    history["loss_scale"] = float(loss_scale.scale)
    return model, history


def check_checkpoint(
    model: eqx.Module,
    x: np.ndarray,
    path: pathlib.Path,
    seed: int,
    precision: str = "float32",
) -> None:
    """Saves `model`, loads it into a freshly built model and checks predictions."""
    eqx.tree_serialise_leaves(path, model)
    fresh = build_model(jr.PRNGKey(seed + 1), precision)  # other weights until loaded
    loaded = eqx.tree_deserialise_leaves(path, fresh)
    before, after = predict(model, x), predict(loaded, x)
    if not bool(jnp.array_equal(before, after)):
        raise SystemExit("checkpoint round trip changed the predictions")
    print(f"checkpoint: {path} ({path.stat().st_size} bytes), predictions identical")


def plot_curves(history: dict, path: pathlib.Path) -> None:
    """Writes loss and accuracy per epoch to a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history["loss"], marker="o")
    ax1.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Loss")
    ax2.plot(epochs, history["train_acc"], marker="o", label="train")
    ax2.plot(epochs, history["test_acc"], marker="o", label="held-out")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"training curves: {path}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="default: 30")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--lr", type=float, default=3e-3, help="default: 3e-3")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument(
        "--out-dir",
        type=pathlib.Path,
        default=pathlib.Path("demo_output"),
        help="where the checkpoint and the PNG go (default: demo_output/)",
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="compute dtype; bfloat16 and float16 keep float32 master weights "
        "(eqx.MixedPrecision), float16 with dynamic loss scaling (default: float32)",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="smoke test: 1 epoch, no accuracy target"
    )
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    epochs = 1 if args.tiny else args.epochs
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = load_data(args.seed)
    model = build_model(jr.PRNGKey(args.seed), args.precision)
    half = args.precision == "float16"
    model, history = train(
        model,
        data,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        loss_scale=eqx.DynamicLossScale() if half else eqx.NoLossScale(),
    )
    seconds = time.perf_counter() - start
    test_acc = history["test_acc"][-1]
    print(
        f"held-out accuracy: {test_acc:.4f} on {len(data[3])} images "
        f"({epochs} epochs, {seconds:.1f} s)"
    )
    if args.precision != "float32":
        print(
            f"mixed precision: {args.precision} compute, float32 master weights; "
            f"{history['skipped']} steps skipped, final loss scale "
            f"{history['loss_scale']:g}"
        )
    checkpoint = args.out_dir / "digits.eqx"
    check_checkpoint(model, data[2], checkpoint, args.seed, args.precision)
    plot_curves(history, args.out_dir / "digits_curves.png")
    return test_acc


if __name__ == "__main__":
    main()
