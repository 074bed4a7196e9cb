"""`filter_shard`: constrain (or place) the array leaves of any PyTree."""

from __future__ import annotations

from typing import Any

import jax
from jax.core import Tracer
from jaxtyping import PyTree

from .._filters import combine, is_array, partition
from .._wrap import api_boundary, constrain


@api_boundary
def filter_shard(
    x: PyTree[Any],
    device_or_shardings: jax.Device | PyTree[jax.sharding.Sharding],  # pyright: ignore[reportInvalidTypeForm]
) -> PyTree[Any]:
    """Constrains how the array leaves of `x` are laid out across devices; non-array
    leaves pass through unchanged.

    Inside `jit` this is `jax.lax.with_sharding_constraint`; outside it moves the
    arrays with `jax.device_put`.

    **Arguments:**

    - `x`: any PyTree, arrays mixed with other objects (a model, a batch, ...).
    - `device_or_shardings`: a single `jax.Device` (placed with a
        `SingleDeviceSharding`), a `jax.sharding.Sharding`, or a PyTree of shardings
        whose structure is a prefix of `x`.

    **Returns:** a copy of `x` whose arrays have the requested shardings.
    """
    if isinstance(device_or_shardings, jax.Device):
        shardings = jax.sharding.SingleDeviceSharding(device_or_shardings)
    else:
        shardings = device_or_shardings
    if any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves(x)):
        return constrain(x, shardings)
    # Outside a trace, place the arrays. (`device_put` also accepts meshes with
    # `Explicit` axes, the default of `jax.make_mesh`.)
    dynamic, static = partition(x, is_array)
    return combine(jax.device_put(dynamic, shardings), static)
