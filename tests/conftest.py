import jax
import pytest


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
