"""A neural ODE: learn the vector field of a 2-D spiral from sampled trajectories.

The true system is `dy/dt = A @ y**3` (the spiral of Chen et al., 2018). The model is
an MLP vector field `f(y)`; a trajectory is its solution from the first observation,
by fixed-step Runge-Kutta 4 written on
`ecliptic.internal.while_loop(kind="checkpointed")`. Reverse mode through the solver
keeps only `--checkpoints` states and recomputes the others, so memory does not grow
with the number of steps, and the solution at the observation times is written into
a preallocated buffer in place (`buffers=`).

    python examples/neural_ode.py
    python examples/neural_ode.py --tiny   # smoke test: a few seconds
"""

# ruff: noqa: F722  (jaxtyping shape strings)

import argparse
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import ecliptic as eqx
from ecliptic.internal import while_loop


A = jnp.array([[-0.1, 2.0], [-2.0, -0.1]])


def true_field(y: Float[Array, "2"]) -> Float[Array, "2"]:
    return A @ y**3


class VectorField(eqx.Module):
    """`f(y)`: an MLP from the state (shape `(2,)`) to its time derivative."""

    mlp: eqx.nn.MLP

    def __init__(self, width: int, depth: int, *, key: PRNGKeyArray):
        self.mlp = eqx.nn.MLP(2, 2, width, depth, activation=jnp.tanh, key=key)

    def __call__(self, y: Float[Array, "2"]) -> Float[Array, "2"]:
        return self.mlp(y)


def rk4_step(field, y: Array, dt: float) -> Array:
    k1 = field(y)
    k2 = field(y + 0.5 * dt * k1)
    k3 = field(y + 0.5 * dt * k2)
    k4 = field(y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def solve(
    field,
    y0: Float[Array, "2"],
    *,
    t1: float,
    n_obs: int,
    substeps: int,
    checkpoints: int,
) -> Float[Array, "n_obs 2"]:
    """The solution at `n_obs` equally spaced times in `[0, t1]`, shape `(n_obs, 2)`,
    by `substeps` RK4 steps between observations."""
    n_steps = (n_obs - 1) * substeps
    dt = t1 / n_steps

    def cond(carry):
        return carry[0] < n_steps

    def body(carry):
        i, y, ys = carry
        y = rk4_step(field, y, dt)
        observed = (i + 1) % substeps == 0
        # Each observation slot is written once, at the step that reaches it.
        ys = ys.at[(i + 1) // substeps].set(y, pred=observed)
        return i + 1, y, ys

    ys = jnp.zeros((n_obs, 2)).at[0].set(y0)
    _, _, ys = while_loop(
        cond,
        body,
        (0, y0, ys),
        max_steps=n_steps,
        buffers=lambda carry: carry[2],
        kind="checkpointed",
        checkpoints=checkpoints,
    )
    return ys


class Solver(NamedTuple):
    """The solver's settings (hashable: a static argument of `filter_jit`)."""

    t1: float
    n_obs: int
    substeps: int
    checkpoints: int


def make_data(n: int, solver: Solver, *, key: PRNGKeyArray):
    """`n` trajectories of the true system, shape `(n, n_obs, 2)`."""
    k_radius, k_angle = jr.split(key)
    radius = jr.uniform(k_radius, (n,), minval=0.6, maxval=1.4)
    angle = jr.uniform(k_angle, (n,), maxval=2 * jnp.pi)
    y0 = jnp.stack([radius * jnp.cos(angle), radius * jnp.sin(angle)], axis=-1)
    # The reference solution: four times finer steps.
    fine = solver._replace(substeps=4 * solver.substeps)._asdict()
    return jax.vmap(lambda y: solve(true_field, y, **fine))(y0)


def loss_fn(model: VectorField, ys: Array, solver: Solver) -> Array:
    """Mean squared error of the model's trajectories from the data's first points,
    `ys` of shape `(batch, n_obs, 2)`."""
    pred = jax.vmap(lambda y: solve(model, y[0], **solver._asdict()))(ys)
    return jnp.mean((pred - ys) ** 2)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="default: 600")
    parser.add_argument("--batch-size", type=int, default=32, help="default: 32")
    parser.add_argument("--width", type=int, default=64, help="default: 64")
    parser.add_argument("--depth", type=int, default=2, help="default: 2")
    parser.add_argument("--lr", type=float, default=3e-3, help="default: 3e-3")
    parser.add_argument("--t1", type=float, default=6.0, help="default: 6.0")
    parser.add_argument("--n-obs", type=int, default=40, help="default: 40")
    parser.add_argument(
        "--substeps", type=int, default=4, help="RK4 steps per observation (4)"
    )
    parser.add_argument(
        "--checkpoints", type=int, default=12, help="states kept for reverse mode (12)"
    )
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke test: 5 steps on small settings"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps, args.batch_size, args.width, args.n_obs = 5, 4, 16, 10
    return args


def main(argv=None) -> float:
    from tqdm import tqdm

    args = parse_args(argv)
    start = time.perf_counter()
    k_model, k_data, k_test = jr.split(jr.PRNGKey(args.seed), 3)
    model = VectorField(args.width, args.depth, key=k_model)
    solver = Solver(args.t1, args.n_obs, args.substeps, args.checkpoints)
    data = make_data(8 * args.batch_size, solver, key=k_data)
    optim = optax.adam(args.lr)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, ys):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, ys, solver)
        updates, opt_state = optim.update(grads, opt_state)
        return eqx.apply_updates(model, updates), opt_state, loss

    n_steps = (args.n_obs - 1) * args.substeps
    print(
        f"{n_steps} RK4 steps per trajectory, {args.checkpoints} checkpoints, "
        f"batch of {args.batch_size}"
    )
    test = make_data(64, solver, key=k_test)
    initial = float(eqx.filter_jit(loss_fn)(model, test, solver))
    rng = jr.PRNGKey(args.seed + 1)
    bar = tqdm(range(args.steps), desc="neural ODE", unit="step")
    for i in bar:
        rng, sub = jr.split(rng)
        idx = jr.choice(sub, len(data), (args.batch_size,), replace=False)
        model, opt_state, loss = step(model, opt_state, data[idx])
        if i % 10 == 0 or i == args.steps - 1:
            bar.set_postfix(loss=f"{float(loss):.5f}")
    final = float(eqx.filter_jit(loss_fn)(model, test, solver))
    elapsed = time.perf_counter() - start
    print(f"held-out loss: {initial:.5f} before training, {final:.5f} after")
    print(f"final loss: {final:.5f} ({elapsed:.1f} s)")
    return final


if __name__ == "__main__":
    main()
