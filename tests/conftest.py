import os


# Tests check behaviour, not speed, and most of their time is XLA compiling: the CPU
# backend compiles without LLVM's optimisation passes (the same results; about a
# third less suite time). Set before JAX starts a backend; subprocesses inherit it
# (`helpers.xla_flags` adds a device count to it).
FAST_COMPILE = "--xla_backend_optimization_level=0"
_flags = os.environ.get("XLA_FLAGS", "")
if FAST_COMPILE not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} {FAST_COMPILE}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402


# Strict JAX: no silent rank or dtype promotion anywhere in the test suite.
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def getkey():
    """Returns a function that gives a fresh PRNG key on every call."""
    counter = iter(range(10**9))

    def _getkey():
        return jax.random.PRNGKey(next(counter))

    return _getkey
