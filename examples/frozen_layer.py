"""Train some parameters and freeze the rest, with a filter spec.

A filter spec is a PyTree of bools with the model's structure: `True` marks the
leaves to train. `eqx.partition` splits the model into the trainable part and the
rest; only the trainable part is passed to `eqx.filter_grad`, and `eqx.combine`
puts the model back together inside the loss. Here an MLP's hidden layers are
frozen and only its last layer learns; the script checks that the frozen weights
did not move.

    python examples/frozen_layer.py
    python examples/frozen_layer.py --tiny   # smoke test
"""

import argparse

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import optax

import ecliptic as eqx


def last_layer_spec(model: eqx.nn.MLP):
    """`True` on the last layer's weight and bias, `False` everywhere else."""
    spec = jtu.tree_map(lambda _: False, model)
    last = model.layers[-1]
    return eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias),
        spec,
        replace=(eqx.is_inexact_array(last.weight), eqx.is_inexact_array(last.bias)),
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="default: 500")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--tiny", action="store_true", help="smoke test: 5 steps")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    steps = 5 if args.tiny else args.steps
    k_model, k_data = jr.split(jr.PRNGKey(args.seed))
    model = eqx.nn.MLP(1, 1, width_size=32, depth=3, activation=jnp.tanh, key=k_model)
    x = jnp.linspace(-2, 2, 128)[:, None]
    y = jnp.sin(2 * x) + 0.05 * jr.normal(k_data, x.shape)

    spec = last_layer_spec(model)
    trainable, frozen = eqx.partition(model, spec)

    @eqx.filter_value_and_grad
    def loss_fn(trainable, frozen, x, y):
        model = eqx.combine(trainable, frozen)
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    optim = optax.adam(1e-2)
    opt_state = optim.init(trainable)

    @eqx.filter_jit
    def step(trainable, frozen, opt_state):
        loss, grads = loss_fn(trainable, frozen, x, y)  # grads for `trainable` only
        updates, opt_state = optim.update(grads, opt_state)
        return eqx.apply_updates(trainable, updates), opt_state, loss

    for i in range(steps):
        trainable, opt_state, loss = step(trainable, frozen, opt_state)
        if i % 100 == 0 or i == steps - 1:
            print(f"step {i:4d}  loss {float(loss):.5f}")

    trained = eqx.combine(trainable, frozen)
    before = eqx.filter(model, spec, inverse=True)
    after = eqx.filter(trained, spec, inverse=True)
    if not bool(eqx.tree_equal(before, after)):
        raise SystemExit("the frozen layers changed")
    moved = not bool(
        jnp.array_equal(model.layers[-1].weight, trained.layers[-1].weight)
    )
    print(f"frozen layers unchanged: True; last layer trained: {moved}")
    return float(loss)


if __name__ == "__main__":
    main()
