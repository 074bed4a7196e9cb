"""Models and optimiser states through orbax-checkpoint's standard PyTree checkpointing:
partition off the arrays, save them, restore into an abstract tree, combine back."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import orbax.checkpoint as ocp
import pytest

import ecliptic

from .helpers import assert_trees_identical, xla_flags


def _model():
    return ecliptic.nn.MLP(3, 2, 8, 2, key=jr.PRNGKey(0))


def _train_step(opt, params, static, opt_state):
    def loss(p):
        model = ecliptic.combine(p, static)
        return jnp.sum(jax.vmap(model)(jnp.ones((4, 3))) ** 2)

    grads = jax.grad(loss)(params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes float and int32 steps
        updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def test_standard_checkpointer_model_and_optimiser_state(tmp_path):
    model = _model()
    opt = optax.adam(1e-2)
    params, static = ecliptic.partition(model, ecliptic.is_array)
    opt_state = opt.init(params)
    params, opt_state = _train_step(opt, params, static, opt_state)

    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(tmp_path / "step1", {"params": params, "opt_state": opt_state})
        ckptr.wait_until_finished()
        abstract = jax.eval_shape(lambda: {"params": params, "opt_state": opt_state})
        restored = ckptr.restore(tmp_path / "step1", abstract)

    assert_trees_identical(restored["params"], params)
    assert_trees_identical(restored["opt_state"], opt_state)
    model_back = ecliptic.combine(restored["params"], static)
    assert_trees_identical(model_back, ecliptic.combine(params, static))
    # Training continues exactly where it left off.
    expected = _train_step(opt, params, static, opt_state)
    resumed = _train_step(opt, restored["params"], static, restored["opt_state"])
    assert_trees_identical(resumed, expected)


def test_checkpoint_manager_keeps_latest_steps(tmp_path):
    params, static = ecliptic.partition(_model(), ecliptic.is_array)
    options = ocp.CheckpointManagerOptions(max_to_keep=2)
    with ocp.CheckpointManager(tmp_path / "run", options=options) as mngr:
        for step in range(3):
            p = jax.tree.map(lambda x, s=step: x + s, params)
            mngr.save(step, args=ocp.args.StandardSave(p))
        mngr.wait_until_finished()
        assert mngr.all_steps() == [1, 2]
        abstract = jax.eval_shape(lambda: params)
        restored = mngr.restore(2, args=ocp.args.StandardRestore(abstract))
    expected = jax.tree.map(lambda x: x + 2, params)
    assert_trees_identical(
        ecliptic.combine(restored, static), ecliptic.combine(expected, static)
    )


_SHARDED_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np, optax
    import orbax.checkpoint as ocp, ecliptic
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    assert len(jax.devices()) == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))

    def spec(x):
        if x.ndim == 2:
            return NamedSharding(mesh, P("data", "model"))
        return NamedSharding(mesh, P())

    model = ecliptic.nn.MLP(8, 4, 16, 1, key=jr.PRNGKey(0))
    params, static = ecliptic.partition(model, ecliptic.is_array)
    params = jax.tree.map(lambda x: jax.device_put(x, spec(x)), params)
    opt_state = optax.adam(1e-3).init(params)
    tree = {"params": params, "opt_state": opt_state}
    shardings = jax.tree.map(lambda x: x.sharding, tree)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree
    )

    # orbax: restored arrays get the shardings of the abstract target
    path = os.path.join(sys.argv[1], "orbax")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree)
        ckptr.wait_until_finished()
        restored = ckptr.restore(path, abstract)
    assert jax.tree.map(lambda x: x.sharding, restored) == shardings
    assert all(jax.tree.leaves(jax.tree.map(
        lambda a, b: bool((a == b).all()), restored, tree)))

    # ecliptic's own format: a sharded `like` gives sharded leaves back
    eqx_path = os.path.join(sys.argv[1], "model.eqx")
    ecliptic.tree_serialise_leaves(eqx_path, tree)
    for like in (tree, abstract):
        loaded = ecliptic.tree_deserialise_leaves(eqx_path, like)
        assert jax.tree.map(lambda x: x.sharding, loaded) == shardings
        assert all(jax.tree.leaves(jax.tree.map(
            lambda a, b: bool((a == b).all()), loaded, tree)))
    w = loaded["params"].layers[0].weight
    assert len(w.sharding.device_set) == 8
    assert w.addressable_shards[0].data.shape == (4, 4)
    print("OK")
    """
)


@pytest.mark.multidevice
def test_sharded_model_restores_with_same_shardings(tmp_path):
    env = dict(
        os.environ,
        XLA_FLAGS=xla_flags(8),
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(pathlib.Path(ecliptic.__file__).parents[1]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED_SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("OK")
