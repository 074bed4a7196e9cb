import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from ecliptic.debug import breakpoint_if


def test_false_predicate_does_not_stop():
    @jax.jit
    def f(x):
        breakpoint_if(x.sum() > 100)
        return x + 1

    np.testing.assert_allclose(f(jnp.ones(3)), 2 * jnp.ones(3))
    vm = jax.jit(jax.vmap(lambda x: (breakpoint_if(x > 100), x * 2)[1]))
    np.testing.assert_allclose(vm(jnp.arange(3.0)), [0.0, 2.0, 4.0])
    jaxpr = str(jax.make_jaxpr(jax.vmap(lambda x: breakpoint_if(x > 0)))(jnp.ones(3)))
    assert "cond" in jaxpr and "select" not in jaxpr  # a real branch under vmap


def test_true_predicate_opens_debugger():
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        from ecliptic.debug import breakpoint_if
        f = jax.jit(jax.vmap(lambda x: (breakpoint_if(x > 1), x + 1)[1]))
        print("OUT", f(jnp.array([0.0, 2.0])).tolist())
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run(
        [sys.executable, "-c", script],
        input="c\n" * 4,  # under vmap, once per batch element
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "(jdb)" in run.stdout, run.stderr
    assert "OUT [1.0, 3.0]" in run.stdout
