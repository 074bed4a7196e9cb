"""Stateful layers: an MLP with `BatchNorm`, built with `eqx.nn.make_with_state`.

`BatchNorm` keeps running statistics. They live outside the model, in an
`eqx.nn.State` that the model takes and returns. In training the batch is a
`jax.vmap` with an `axis_name` that BatchNorm averages over; the state is shared by
the batch (`in_axes=(0, None)`, `out_axes=(0, None)`). For inference,
`eqx.nn.inference_mode` switches BatchNorm to its running statistics.

    python examples/stateful.py
    python examples/stateful.py --tiny   # smoke test
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import ecliptic as eqx


class Model(eqx.Module):
    """Linear -> BatchNorm -> relu -> Linear, on one flattened 8x8 digit."""

    linear1: eqx.nn.Linear
    norm: eqx.nn.BatchNorm
    linear2: eqx.nn.Linear

    def __init__(self, *, key: PRNGKeyArray):
        k1, k2 = jr.split(key)
        self.linear1 = eqx.nn.Linear(64, 64, key=k1)
        self.norm = eqx.nn.BatchNorm(64, axis_name="batch", mode="batch")
        self.linear2 = eqx.nn.Linear(64, 10, key=k2)

    def __call__(
        self, x: Float[Array, "64"], state: eqx.nn.State
    ) -> tuple[Float[Array, "10"], eqx.nn.State]:
        """**Arguments:** `x`: one example, shape `(64,)`; `state`: the model state.

        **Returns:** `(logits, state)`, the logits of shape `(10,)`.
        """
        x = self.linear1(x)
        x, state = self.norm(x, state)
        return self.linear2(jax.nn.relu(x)), state


def batched(model: Model, x: Float[Array, "b 64"], state: eqx.nn.State):
    """Maps the model over the batch; BatchNorm averages over `axis_name="batch"`."""
    return jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(
        x, state
    )


def loss_fn(model, state, x, y):
    logits, state = batched(model, x, state)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, state


@eqx.filter_jit
def evaluate(model, state, x, y):
    model = eqx.nn.inference_mode(model)
    logits, _ = batched(model, x, state)
    return jnp.mean(jnp.argmax(logits, axis=-1) == y)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="default: 20")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--tiny", action="store_true", help="smoke test: 1 epoch")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    args = parse_args(argv)
    epochs = 1 if args.tiny else args.epochs
    start = time.perf_counter()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0)

    # make_with_state builds the model, collects its initial state and frees the
    # copy of that state that the model itself held.
    model, state = eqx.nn.make_with_state(Model)(key=jr.PRNGKey(args.seed))
    optim = optax.adam(3e-3)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state, opt_state, x, y):
        grad_fn = eqx.filter_value_and_grad(loss_fn, has_aux=True)
        (loss, state), grads = grad_fn(model, state, x, y)
        updates, opt_state = optim.update(grads, opt_state)
        return eqx.apply_updates(model, updates), state, opt_state, loss

    rng = np.random.default_rng(args.seed)
    for epoch in range(epochs):
        perm = rng.permutation(len(x_tr))
        for b in range(len(x_tr) // args.batch_size):
            idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
            model, state, opt_state, loss = step(
                model, state, opt_state, x_tr[idx], y_tr[idx]
            )
        if epoch % 5 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch + 1:3d}  loss {float(loss):.4f}")
    acc = float(evaluate(model, state, x_te, y_te))
    print(f"test accuracy: {acc:.4f} ({time.perf_counter() - start:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
