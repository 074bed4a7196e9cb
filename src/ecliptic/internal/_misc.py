"""Small tools of `ecliptic.internal`: hashable partitions, cached shape evaluation,
evaluating to empty/zero arrays, `left_broadcast_to`, `scan_trick`, `nextafter`/
`prevbefore`, `str2jax`, `GetKey` and the old `ContainerMeta`."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import wadler_lindig as wl
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._caches import BoundedCache
from .._eval_shape import filter_eval_shape
from .._filters import is_array
from .._messages import container_reverse_lookup_error
from .._module import Module
from ._nontraceable import nonbatchable


def hashable_partition(pytree: PyTree, filter_fn: Callable[[Any], bool]) -> tuple:
    """Splits the leaves of `pytree` in two, in a form that can be hashed.

    **Arguments:**

    - `pytree`: any PyTree.
    - `filter_fn`: `filter_fn(leaf) -> bool`; true leaves go to the first part.

    **Returns:** `(dynamic, static)`: `dynamic` is a tuple with one entry per leaf (the
    leaf where `filter_fn` is true, else `None`); `static` is `(leaves, treedef)`,
    with the other leaves (and `None` elsewhere). Undo with `hashable_combine`.
    """
    leaves, treedef = jtu.tree_flatten(pytree)
    keep = [bool(filter_fn(x)) for x in leaves]
    dynamic = tuple(x if k else None for x, k in zip(leaves, keep))
    static = tuple(None if k else x for x, k in zip(leaves, keep))
    return dynamic, (static, treedef)


def hashable_combine(dynamic: tuple, static: tuple) -> PyTree:
    """Undoes `hashable_partition`.

    **Arguments:**

    - `dynamic`: the first part returned by `hashable_partition`.
    - `static`: the second part, `(leaves, treedef)`.

    **Returns:** the original PyTree.
    """
    static_leaves, treedef = static
    leaves = [d if s is None else s for d, s in zip(dynamic, static_leaves)]
    return jtu.tree_unflatten(treedef, leaves)


def _to_struct(x: Any) -> Any:
    if is_array(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype)
    return x


# Cached output shapes of `cached_filter_eval_shape`, keyed by the function and the
# shapes/dtypes of its inputs. A miss re-traces the function abstractly (no compile).
_EVAL_SHAPE_CACHE_SIZE = 512
_eval_shape_cache = BoundedCache(_EVAL_SHAPE_CACHE_SIZE)


def cached_filter_eval_shape(fn: Callable, *args: Any, **kwargs: Any) -> PyTree:
    """As [`ecliptic.filter_eval_shape`][], remembering the result for each function
    and each combination of input shapes, dtypes and non-array leaves.

    **Arguments:**

    - `fn`: the function, called as `fn(*args, **kwargs)`.
    - `*args`, `**kwargs`: its arguments (arrays are replaced by their shape/dtype).

    **Returns:** the output of `fn`, with arrays as `jax.ShapeDtypeStruct`s.
    """
    leaves, treedef = jtu.tree_flatten(jtu.tree_map(_to_struct, (fn, args, kwargs)))
    key = (tuple(leaves), treedef)
    try:
        return _eval_shape_cache[key]
    except TypeError:  # an unhashable leaf: evaluate without caching
        return filter_eval_shape(fn, *args, **kwargs)
    except KeyError:
        pass
    fn2, args2, kwargs2 = jtu.tree_unflatten(treedef, leaves)
    out = filter_eval_shape(fn2, *args2, **kwargs2)
    _eval_shape_cache[key] = out
    return out


def _empty_like(x: Any) -> Array:
    return jnp.empty(x.shape, x.dtype)


def _zeros_like(x: Any) -> Array:
    return jnp.zeros(x.shape, x.dtype)


def eval_empty(fn: Callable, *inputs: PyTree[Any]) -> PyTree[Array]:
    """Uninitialised arrays shaped like the output of `fn(*inputs)` (which is only
    evaluated abstractly).

    **Arguments:**

    - `fn`: a function returning a PyTree of arrays.
    - `*inputs`: its arguments.

    **Returns:** a PyTree like the output, of `jnp.empty` arrays.
    """
    return jtu.tree_map(_empty_like, filter_eval_shape(fn, *inputs))


def eval_zero(fn: Callable, *inputs: PyTree[Any]) -> PyTree[Array]:
    """Arrays of zeros shaped like the output of `fn(*inputs)` (which is only
    evaluated abstractly).

    **Arguments:**

    - `fn`: a function returning a PyTree of arrays.
    - `*inputs`: its arguments.

    **Returns:** a PyTree like the output, of `jnp.zeros` arrays.
    """
    return jtu.tree_map(_zeros_like, filter_eval_shape(fn, *inputs))


def left_broadcast_to(arr: Array, shape: tuple[int, ...]) -> Array:
    """Broadcasts `arr` to `shape`, lining up its axes on the *left* (NumPy lines them
    up on the right).

    **Arguments:**

    - `arr`: an array of shape `shape[: arr.ndim]` (or broadcastable to it).
    - `shape`: the target shape.

    **Returns:** an array of shape `shape`.
    """
    arr = jnp.reshape(arr, arr.shape + (1,) * (len(shape) - arr.ndim))
    return jnp.broadcast_to(arr, shape)


_X = TypeVar("_X")


def scan_trick(fn: Callable, intermediates: Sequence[Callable], init: _X) -> _X:
    """Computes `fn` then `intermediates[0]`, `fn` then `intermediates[1]`, ..., and
    a final `fn`, with `fn` traced and compiled only once (inside a `lax.scan`).

    **Arguments:**

    - `fn`: `fn(x) -> x`, an expensive function.
    - `intermediates`: functions `x -> x` applied after each call of `fn` but the last.
    - `init`: the starting value `x`.

    **Returns:** `fn(... intermediates[1](fn(intermediates[0](fn(init)))))`.
    """
    branches = list(intermediates) + [lambda x: x]

    def body(carry, step):
        return lax.switch(nonbatchable(step), branches, fn(carry)), None

    out, _ = lax.scan(body, init, xs=jnp.arange(len(branches)))
    return out


def _step_away(x: Array, direction: float) -> Array:
    x = jnp.asarray(x)
    y = jnp.nextafter(x, jnp.asarray(direction, x.dtype))
    # XLA flushes denormals to zero, so the float after 0 would compare equal to 0:
    # step to the smallest normal number instead.
    tiny = jnp.asarray(jnp.finfo(x.dtype).tiny, x.dtype)
    return jnp.where(x == 0, tiny if direction > 0 else -tiny, y)


@jax.custom_jvp
def nextafter(x: Array) -> Array:
    """The next floating point number after `x` (towards `+inf`); after 0, the
    smallest normal number. Its derivative is taken to be 1.

    **Arguments:**

    - `x`: a floating point array of any shape.

    **Returns:** an array of the same shape and dtype.
    """
    return _step_away(x, jnp.inf)


@jax.custom_jvp
def prevbefore(x: Array) -> Array:
    """The floating point number before `x` (towards `-inf`); before 0, minus the
    smallest normal number. Its derivative is taken to be 1.

    **Arguments:**

    - `x`: a floating point array of any shape.

    **Returns:** an array of the same shape and dtype.
    """
    return _step_away(x, -jnp.inf)


@nextafter.defjvp
def _nextafter_jvp(primals, tangents):
    return nextafter(primals[0]), tangents[0]


@prevbefore.defjvp
def _prevbefore_jvp(primals, tangents):
    return prevbefore(primals[0]), tangents[0]


def str2jax(msg: str) -> Module:
    """A Module with no leaves whose `str` and `repr` are `msg`: a way to pass a
    string through JAX transformations as part of a PyTree's structure.

    **Arguments:**

    - `msg`: the string.

    **Returns:** an instance of a fresh Module class named `msg`.
    """

    class _Text(Module):
        def __pdoc__(self, **kwargs: Any) -> wl.AbstractDoc:
            del kwargs
            return wl.TextDoc(msg)

        def __repr__(self) -> str:
            return msg

    _Text.__name__ = _Text.__qualname__ = msg
    return _Text()


def _default_seed() -> int | None:
    for var in ("ECLIPTIC_GETKEY_SEED", "EQX_GETKEY_SEED"):
        if var in os.environ:
            return int(os.environ[var])
    return None


@dataclasses.dataclass(eq=False)
class GetKey:
    """A fresh PRNG key on every call; meant as a test fixture
    (`return ecliptic.internal.GetKey()` in `conftest.py`).

    The seed is random unless given (or set by the environment variable
    `ECLIPTIC_GETKEY_SEED` / `EQX_GETKEY_SEED`); it shows in the `repr`, so a failing
    test can be reproduced. Do not use it outside tests.

    **Arguments:**

    - `seed`: the seed, or `None` for a random one.
    """

    seed: int
    call: int
    key: PRNGKeyArray

    def __init__(self, seed: int | None = _default_seed()):
        self.seed = random.randint(0, 2**31 - 1) if seed is None else seed
        self.call = 0
        self.key = jr.PRNGKey(self.seed)

    def __call__(self) -> PRNGKeyArray:
        """**Returns:** a new key, different on every call."""
        self.call += 1
        return jr.fold_in(self.key, self.call)


class ContainerMeta(type):
    """Old (kept for compatibility): a metaclass that numbers the class attributes.

    In `class C(metaclass=ContainerMeta): a = "x"; b = "y"`, `C.a == 0`, `C.b == 1`,
    `C[1] == "y"` and `len(C) == 2`; an integer (or integer scalar array) is an
    instance of `C`. Prefer [`ecliptic.Enumeration`][].
    """

    reverse_lookup: list

    def __new__(mcs, name: str, bases: tuple, namespace: dict) -> Any:
        if "reverse_lookup" in namespace:
            raise container_reverse_lookup_error(name)
        numbered: dict[str, Any] = {}
        values = []
        for key, value in namespace.items():
            if key.startswith("__") and key.endswith("__"):
                numbered[key] = value
            else:
                numbered[key] = len(values)
                values.append(value)
        numbered["reverse_lookup"] = values
        return super().__new__(mcs, name, bases, numbered)

    def __instancecheck__(cls, instance: Any) -> bool:
        if is_array(instance):
            return instance.shape == () and jnp.issubdtype(instance.dtype, jnp.integer)
        return isinstance(instance, int) or super().__instancecheck__(instance)

    def __getitem__(cls, item: int) -> Any:
        return cls.reverse_lookup[item]

    def __len__(cls) -> int:
        return len(cls.reverse_lookup)
