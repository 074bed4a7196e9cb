"""A GRU that classifies sequences: does a noisy 2-D spiral turn clockwise or not?

`eqx.nn.GRUCell` computes one step; the loop over time is a `jax.lax.scan` written
by the user, and the batch is a `jax.vmap` over the whole model.

    python examples/train_rnn.py
    python examples/train_rnn.py --tiny   # smoke test
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import math
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import ecliptic as eqx


def make_spirals(n: int, length: int, *, key: PRNGKeyArray):
    """`n` sequences of `length` 2-D points, shape `(n, length, 2)`, and labels `(n,)`:
    1.0 for clockwise spirals, 0.0 for anticlockwise ones."""
    k_dir, k_phase, k_noise = jr.split(key, 3)
    clockwise = jr.bernoulli(k_dir, 0.5, (n,))
    t = jnp.linspace(0, 2 * math.pi, length)
    phase = jr.uniform(k_phase, (n, 1), maxval=2 * math.pi)
    angle = jnp.where(clockwise[:, None], -t, t) + phase
    radius = jnp.linspace(1.0, 0.2, length)
    xs = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)
    xs = xs + 0.1 * jr.normal(k_noise, xs.shape)
    return xs, clockwise.astype(jnp.float32)


class RNNClassifier(eqx.Module):
    """Runs a GRU cell over one sequence, then a linear read-out of the last state."""

    cell: eqx.nn.GRUCell
    readout: eqx.nn.Linear

    def __init__(self, input_size: int, hidden_size: int, *, key: PRNGKeyArray):
        k_cell, k_out = jr.split(key)
        self.cell = eqx.nn.GRUCell(input_size, hidden_size, key=k_cell)
        self.readout = eqx.nn.Linear(hidden_size, "scalar", key=k_out)

    def __call__(self, xs: Float[Array, "time features"]) -> Float[Array, ""]:
        """**Arguments:** `xs`: one sequence, shape `(time, features)`.

        **Returns:** the logit that the sequence turns clockwise, shape `()`.
        """

        def step(hidden, x):
            return self.cell(x, hidden), None

        init = jnp.zeros((self.cell.hidden_size,), dtype=xs.dtype)
        last, _ = jax.lax.scan(step, init, xs)
        return self.readout(last)


def loss_fn(model, xs, ys):
    logits = jax.vmap(model)(xs)
    return optax.sigmoid_binary_cross_entropy(logits, ys).mean()


@eqx.filter_jit
def accuracy(model, xs, ys):
    return jnp.mean((jax.vmap(model)(xs) > 0) == (ys > 0.5))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="default: 300")
    parser.add_argument("--hidden-size", type=int, default=16, help="default: 16")
    parser.add_argument("--length", type=int, default=32, help="default: 32")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--tiny", action="store_true", help="smoke test: 5 steps")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    steps = 5 if args.tiny else args.steps
    start = time.perf_counter()
    k_model, k_train, k_test = jr.split(jr.PRNGKey(args.seed), 3)
    model = RNNClassifier(2, args.hidden_size, key=k_model)
    optim = optax.adam(1e-2)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, key):
        xs, ys = make_spirals(args.batch_size, args.length, key=key)
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, xs, ys)
        updates, opt_state = optim.update(grads, opt_state)
        return eqx.apply_updates(model, updates), opt_state, loss

    for i, key in enumerate(jr.split(k_train, steps)):
        model, opt_state, loss = step(model, opt_state, key)
        if i % 50 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.4f}")
    xs, ys = make_spirals(1000, args.length, key=k_test)
    acc = float(accuracy(model, xs, ys))
    print(f"test accuracy: {acc:.4f} ({time.perf_counter() - start:.1f} s)")
    return acc


if __name__ == "__main__":
    main()
