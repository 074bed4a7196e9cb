import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ecliptic as eqx


def test_shard_single_device_outside_jit():
    device = jax.devices()[0]
    x = {"a": jnp.ones(3), "fn": jnp.sin, "n": 3}
    out = eqx.filter_shard(x, device)
    assert out["fn"] is jnp.sin and out["n"] == 3
    assert out["a"].sharding == jax.sharding.SingleDeviceSharding(device)


def _run_multidevice(code: str) -> str:
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    src = os.path.join(os.path.dirname(os.path.dirname(__file__)), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    prelude = "import jax\nassert len(jax.devices()) == 8, jax.devices()\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.multidevice
def test_shard_on_mesh_inside_and_outside_jit():
    out = _run_multidevice(
        """
        import jax, jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import ecliptic as eqx

        mesh = Mesh(jax.devices(), ("data",))
        rows = NamedSharding(mesh, P("data"))
        whole = NamedSharding(mesh, P())
        batch = {"x": jnp.ones((16, 4)), "name": "b"}
        placed = eqx.filter_shard(batch, rows)
        assert placed["name"] == "b"
        assert placed["x"].sharding == rows, placed["x"].sharding
        assert len(placed["x"].addressable_shards) == 8
        assert placed["x"].addressable_shards[0].data.shape == (2, 4)

        @jax.jit
        def step(x):
            y = eqx.filter_shard({"y": x * 2, "s": 1}, whole)["y"]
            return eqx.filter_shard(y, rows)

        out = step(placed["x"])
        assert out.sharding == rows, out.sharding
        # Prefix tree of shardings: one per top-level entry.
        both = eqx.filter_shard({"a": jnp.ones(8), "b": jnp.ones(8)},
                                {"a": rows, "b": whole})
        assert both["a"].sharding == rows and both["b"].sharding == whole
        print("ok")
        """
    )
    assert out.strip().endswith("ok")


@pytest.mark.multidevice
def test_pmap_over_eight_devices():
    out = _run_multidevice(
        """
        import warnings
        import jax, jax.numpy as jnp, numpy as np
        import ecliptic as eqx

        @eqx.filter_pmap(axis_name="i")
        def f(x, scale, name):
            return jax.lax.psum(x * scale, "i"), name

        x = jnp.arange(8.0)
        total, name = f(x, 2.0, "n")
        assert name == "n"
        np.testing.assert_allclose(total, np.full(8, 56.0))
        assert len(total.sharding.device_set) == 8, total.sharding

        g = eqx.filter_pmap(lambda x, y: x + y, in_axes=(0, None), donate="all")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = g(jnp.ones((8, 2)), jnp.arange(2.0))
        np.testing.assert_allclose(out, np.ones((8, 2)) + np.arange(2.0))
        assert len(out.sharding.device_set) == 8

        h = eqx.filter_pmap(lambda x: (x, jnp.sum(jnp.ones(3))), out_axes=(1, None))
        a, b = h(jnp.ones((8, 3)))
        assert a.shape == (3, 8) and b.shape == ()
        compiled = eqx.filter_pmap(lambda x: x * 3).lower(jnp.ones((8, 1))).compile()
        np.testing.assert_allclose(compiled(jnp.ones((8, 1))), 3 * np.ones((8, 1)))
        print("ok")
        """
    )
    assert out.strip().endswith("ok")


def test_pmap_and_shard_agree_with_numpy_on_one_device():
    x = jnp.arange(3.0)
    out = eqx.filter_pmap(lambda x: x * 2)(x[None])
    np.testing.assert_allclose(out[0], 2 * np.asarray(x))
