"""Importing ecliptic touches no device: no array, no compilation, no backend."""

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_then_set_cpu_device_count():
    # The common Equinox idiom: import the library, then configure JAX's devices.
    result = _run(
        """
        import ecliptic, ecliptic.nn, ecliptic.debug, ecliptic.internal
        import jax
        jax.config.update("jax_num_cpu_devices", 3)
        print(len(jax.devices("cpu")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3"]


def test_import_initialises_no_backend():
    # Any array, compilation or device query goes through `xla_bridge.backends`.
    result = _run(
        """
        import jax
        from jax._src import xla_bridge
        def refuse(*args, **kwargs):
            raise AssertionError("a backend was initialised at import time")
        xla_bridge.backends = refuse
        import ecliptic, ecliptic.nn, ecliptic.debug, ecliptic.internal
        print("imported")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["imported"]
