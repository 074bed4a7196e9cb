"""Buffers: arrays of a loop's value that the body writes into in place.

Inside a loop `buffers(val)` picks some arrays of the value; the body sees each as a
`_Buffer`, which supports only reading (`buf[i]`) and writing once per location
(`buf.at[i].set(x)`). A write lowers to `maybe_set_p`, which (a) freezes the entry of
a `vmap` member whose loop has already finished, and (b) transposes without a scatter.
A checkpointed loop also leaves buffers out of its saved states.

`MaybeBuffer[T]` annotates an argument that may be `T` or a buffer wrapping a `T`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TYPE_CHECKING

import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ..._messages import buffer_dtype_error, buffer_pred_error
from ..._module import field, Module
from ..._tree_at import tree_at
from ._primitives import maybe_set


class _Buffer(Module):
    """An array of a loop's value, seen by the body as write-once storage.

    `_pred` is the loop's "still running" flag for this step (batched under `vmap`);
    `_tag` identifies the loop step that made the wrapper, so that a loop unwraps only
    its own buffers (an outer loop's buffer may sit inside, when loops nest).
    """

    _array: Any  # an array, or the `_Buffer` of an enclosing loop
    _pred: Any
    _tag: object = field(static=True)
    _makes_false_steps: bool = field(static=True)

    def __getitem__(self, item: Any) -> Any:
        return self._array[item]

    def _write(self, pred: Any, item: Any, x: Any, kwargs: dict, mfs: bool) -> _Buffer:
        pred = pred & self._pred
        if isinstance(self._array, _Buffer):
            array = self._array._write(pred, item, x, kwargs, mfs)
        else:
            array = maybe_set(
                pred, self._array, x, item, kwargs=kwargs, makes_false_steps=mfs
            )
        return _Buffer(array, self._pred, self._tag, self._makes_false_steps)

    @property
    def at(self) -> _BufferAt:
        return _BufferAt(self)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> Any:
        return self._array.dtype

    @property
    def size(self) -> int:
        return self._array.size

    @property
    def ndim(self) -> int:
        return self._array.ndim


class _BufferAt(Module):
    _buffer: _Buffer

    def __getitem__(self, item: Any) -> _BufferItem:
        return _BufferItem(self._buffer, item)


class _BufferItem(Module):
    _buffer: _Buffer
    _item: Any

    def set(self, x: Any, *, pred: Any = True, **kwargs: Any) -> _Buffer:
        """`buffer.at[item].set(x)`, written only where `pred` (a bool scalar) holds.

        **Arguments:**

        - `x`: the value, broadcastable to `buffer[item]`, of a dtype that promotes
            to the buffer's.
        - `pred`: boolean scalar, shape `()`; `True` by default.
        - `**kwargs`: as `jax.Array.at[].set` (`mode=`, `unique_indices=`...).

        **Returns:** the new buffer.
        """
        buffer = self._buffer
        _check_write(buffer.dtype, x, pred)
        mfs = buffer._makes_false_steps or pred is not True
        return buffer._write(jnp.asarray(pred), self._item, x, kwargs, mfs)


def _check_write(dtype: Any, x: Any, pred: Any) -> None:
    if jnp.shape(pred) != () or jnp.result_type(pred) != jnp.bool_:
        raise buffer_pred_error(pred)
    value_dtype = jnp.result_type(x)
    with jax.numpy_dtype_promotion("standard"):
        promoted = jnp.result_type(x, jnp.zeros((), dtype))
    if promoted != dtype:
        raise buffer_dtype_error(dtype, value_dtype)


def buffer_at_set(buffer: Any, item: Any, x: Any, *, pred: Any = True, **kwargs: Any):
    """`buffer.at[item].set(x)` for a loop buffer or a plain array, with `pred`.

    Useful to call a body that writes into buffers outside of a loop.

    **Arguments:**

    - `buffer`: a buffer (inside `while_loop`/`scan`) or a JAX array.
    - `item`: the index.
    - `x`: the value, broadcastable to `buffer[item]`.
    - `pred`: boolean scalar, shape `()`: write only where it holds (default `True`).
    - `**kwargs`: as `jax.Array.at[].set`.

    **Returns:** the new buffer, or the new array.
    """
    if isinstance(buffer, _Buffer):
        return buffer.at[item].set(x, pred=pred, **kwargs)
    if pred is not True:
        x = jnp.where(pred, x, buffer.at[item].get(**kwargs))
    return buffer.at[item].set(x, **kwargs)


if TYPE_CHECKING:
    from typing import Annotated, TypeAlias, TypeVar

    _T = TypeVar("_T")
    MaybeBuffer: TypeAlias = Annotated[_T, "MaybeBuffer"]
else:

    class _MaybeBufferMeta(type):
        def __instancecheck__(cls, instance: Any) -> bool:
            while isinstance(instance, _Buffer):
                instance = instance._array
            return isinstance(instance, cls.annotation)

    class MaybeBuffer:
        """`MaybeBuffer[T]`: a `T`, or a loop buffer wrapping one (for annotations).

        `isinstance(x, MaybeBuffer[jax.Array])` holds for arrays and for buffers of
        arrays.
        """

        def __class_getitem__(cls, item: Any) -> type:
            return _MaybeBufferMeta("MaybeBuffer", (), {"annotation": item})


# ---------------------------------------------------------------------------------
# Wrapping a loop's value.
# ---------------------------------------------------------------------------------


class _Selected:
    """Marks a leaf that `buffers` selected (a plain object: a leaf of any tree)."""

    __slots__ = ()


_SELECTED = _Selected()


def _innermost(x: Any) -> Any:
    while isinstance(x, _Buffer):
        x = x._array
    return x


def buffer_mask(buffers: Callable | None, val: Any) -> tuple[bool, ...]:
    """Which flat leaves of `val` are buffers.

    **Arguments:**

    - `buffers`: the user's `buffers` function (`val -> node(s)`), or `None`.
    - `val`: the loop's value (a PyTree; may hold buffers of enclosing loops).

    **Returns:** one bool per leaf of `jtu.tree_leaves(val)`.
    """
    leaves = jtu.tree_leaves(val)
    if buffers is None:
        return (False,) * len(leaves)

    def _where(tree: Any) -> list:
        nodes = jtu.tree_map(_innermost, buffers(tree), is_leaf=_is_buffer)
        return jtu.tree_leaves(nodes)

    # (Every leaf of `val` is an array: the loops convert the initial value first.)
    marked = tree_at(_where, val, replace_fn=lambda _: _SELECTED)
    return tuple(leaf is _SELECTED for leaf in jtu.tree_leaves(marked))


def _is_buffer(x: Any) -> bool:
    return isinstance(x, _Buffer)


def wrap(val: Any, mask: tuple, pred: Any, tag: object, mfs: bool) -> Any:
    """`val` with the leaves selected by `mask` wrapped as buffers of this step."""
    if not any(mask):
        return val
    leaves, treedef = jtu.tree_flatten(val)
    leaves = [
        _Buffer(leaf, pred, tag, mfs) if m else leaf for leaf, m in zip(leaves, mask)
    ]
    return jtu.tree_unflatten(treedef, leaves)


def is_own_buffer(tag: object) -> Callable[[Any], bool]:
    """A predicate: is this node a buffer made by the step tagged `tag`?"""

    def _own(x: Any) -> bool:
        return isinstance(x, _Buffer) and x._tag is tag

    return _own
