"""Stateful layers: `StateIndex`, `State`, `make_with_state`, `delete_init_state`,
`StatefulLayer`.

A stateful layer (e.g. `BatchNorm`) holds a `StateIndex`: a static, identity-hashed
`marker` plus the `init` value of its state. The state itself lives outside the model,
in a `State`: a mapping marker -> pytree of arrays that is itself a pytree (leaves = the
values, treedef = the markers). Layers read it with `state.get(index)` and write it
with `state.set(index, value)`, which returns a new `State` and invalidates the old
one, so that re-using a stale state is an error rather than a silent bug.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax.numpy as jnp
import jax.tree_util as jtu

from .._messages import (
    missing_state_index_message,
    stale_state_error,
    state_deleted_init_error,
    state_index_init_error,
    state_index_type_error,
    state_set_structure_error,
    state_update_keys_error,
    state_update_type_error,
)
from .._module import field, Module
from .._tree import same_shapes


_Value = TypeVar("_Value")
_T = TypeVar("_T")
PyTree = Any


class _DeletedInit(Module):
    """Stands in for the `init` of a `StateIndex` after `delete_init_state`. It is an
    empty pytree node, so a deleted init has no leaves."""

    def __repr__(self) -> str:
        return "_DeletedInit()"


_deleted_init = _DeletedInit()


class _MissingState:
    """The default of `state=` in layers whose `state` argument is optional."""

    def __repr__(self) -> str:
        return "<no state>"


missing_state: Any = _MissingState()


class StateIndex(Module, Generic[_Value]):
    """A key into a [`ecliptic.nn.State`][] together with the initial value of that
    piece of state.

    The `marker` is a static, identity-hashed object (replaced by a stable string by
    [`ecliptic.nn.make_with_state`][]); the `init` value is a pytree of arrays.
    """

    marker: object | str = field(static=True)
    init: Any

    def __init__(self, init: _Value):
        """**Arguments:**

        - `init`: the initial value of the state: a pytree of arrays (any shape).
        """
        if isinstance(init, (types.FunctionType, types.BuiltinFunctionType)):
            raise state_index_init_error(init)
        self.marker = object()
        self.init = init


def _is_index(x: Any) -> bool:
    return isinstance(x, StateIndex)


def _check_index(item: Any, method: str) -> None:
    if type(item) is not StateIndex:
        raise state_index_type_error(method, item)


class State:
    """The state of a model (for example the running statistics of every
    [`ecliptic.nn.BatchNorm`][]): a mapping from [`ecliptic.nn.StateIndex`][] to
    pytrees of arrays. It is a pytree; its treedef holds the markers.

    Usually built with [`ecliptic.nn.make_with_state`][].
    """

    __slots__ = ("_state", "__weakref__")

    def __init__(self, model: PyTree):
        """**Arguments:**

        - `model`: any pytree. The initial state of every `StateIndex` in it is
            collected (as JAX arrays).
        """
        state: dict[Any, Any] = {}
        for leaf in jtu.tree_leaves(model, is_leaf=_is_index):
            if _is_index(leaf):
                if isinstance(leaf.init, _DeletedInit):
                    raise state_deleted_init_error()
                state[leaf.marker] = jtu.tree_map(jnp.asarray, leaf.init)
        self._state: dict[Any, Any] | None = state

    @classmethod
    def _from_dict(cls, state: dict[Any, Any]) -> State:
        new = object.__new__(cls)
        new._state = state
        return new

    def _live(self) -> dict[Any, Any]:
        if self._state is None:
            raise stale_state_error()
        return self._state

    def get(self, item: StateIndex[_Value]) -> _Value:
        """Returns the current value stored for `item`.

        **Arguments:**

        - `item`: a [`ecliptic.nn.StateIndex`][].

        **Returns:** the value (a pytree of arrays).
        """
        state = self._live()
        _check_index(item, "get")
        try:
            return state[item.marker]
        except KeyError:
            raise ValueError(
                missing_state_index_message(item.marker, len(state))
            ) from None

    def set(self, item: StateIndex[_Value], value: _Value) -> State:
        """Returns a new `State` with `value` stored for `item`. **The old `State`
        (`self`) becomes invalid**: use the returned one.

        **Arguments:**

        - `item`: a [`ecliptic.nn.StateIndex`][].
        - `value`: the new value; same pytree structure, shapes and dtypes as the
            old one.

        **Returns:** the updated `State`.
        """
        state = self._live()
        _check_index(item, "set")
        try:
            old = state[item.marker]
        except KeyError:
            raise ValueError(
                missing_state_index_message(item.marker, len(state))
            ) from None
        value = jtu.tree_map(jnp.asarray, value)
        if not same_shapes(old, value):
            raise state_set_structure_error(old, value)
        new = dict(state)
        new[item.marker] = value
        self._state = None
        return State._from_dict(new)

    def substate(self, pytree: PyTree) -> State:
        """Returns a smaller `State` holding only the states of the
        [`ecliptic.nn.StateIndex`][]es found in `pytree` (e.g. a sub-model).

        **Arguments:**

        - `pytree`: any pytree.

        **Returns:** a new `State`; `self` stays valid.
        """
        state = self._live()
        out = {}
        for leaf in jtu.tree_leaves(pytree, is_leaf=_is_index):
            if _is_index(leaf):
                if leaf.marker not in state:
                    raise ValueError(
                        missing_state_index_message(leaf.marker, len(state))
                    )
                out[leaf.marker] = state[leaf.marker]
        return State._from_dict(out)

    def update(self, substate: State) -> State:
        """Merges the values of `substate` (typically made by `substate`) into a new
        `State`. **The old `State` (`self`) becomes invalid.**

        **Arguments:**

        - `substate`: a `State` whose keys are a subset of `self`'s.

        **Returns:** the updated `State`.
        """
        state = self._live()
        if type(substate) is not State:
            raise state_update_type_error(substate)
        sub = substate._live()
        extra = [k for k in sub if k not in state]
        if extra:
            raise state_update_keys_error(len(state), extra)
        new = dict(state)
        new.update(sub)
        self._state = None
        return State._from_dict(new)

    def __repr__(self) -> str:
        if self._state is None:
            return "State(~old~)"
        from .._pretty_print import tree_pformat

        return tree_pformat(self)

    def __pdoc__(self, **kwargs: Any) -> Any:
        import wadler_lindig as wl

        if self._state is None:
            return wl.TextDoc("State(~old~)")
        return wl.bracketed(
            begin=wl.TextDoc("State("),
            docs=wl.named_objs(
                [
                    (k if isinstance(k, str) else f"<StateIndex {i}>", v)
                    for i, (k, v) in enumerate(self._state.items())
                ],
                **kwargs,
            ),
            sep=wl.comma,
            end=wl.TextDoc(")"),
            indent=kwargs.get("indent", 2),
        )


def _flatten_state(state: State) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    live = state._live()
    keys = tuple(live)
    return tuple(live[k] for k in keys), keys


def _unflatten_state(keys: tuple[Any, ...], values: Any) -> State:
    return State._from_dict(dict(zip(keys, values, strict=True)))


jtu.register_pytree_node(State, _flatten_state, _unflatten_state)


def _delete_one(x: Any) -> Any:
    if not _is_index(x):
        return x
    # One level of the StateIndex: its only child is `init` (the marker is static).
    children, treedef = jtu.tree_flatten(x, is_leaf=lambda y: y is not x)
    if len(children) != 1:
        return x  # `init` was already an empty pytree: nothing to delete.
    return jtu.tree_unflatten(treedef, [_deleted_init])


def delete_init_state(model: PyTree) -> PyTree:
    """Returns a copy of `model` whose [`ecliptic.nn.StateIndex`][]es no longer hold
    their initial values (to save memory once a [`ecliptic.nn.State`][] was made).

    **Arguments:**

    - `model`: any pytree.

    **Returns:** the same pytree with every `StateIndex.init` replaced by an empty
    placeholder. Calling `State(...)` on it raises.
    """
    return jtu.tree_map(_delete_one, model, is_leaf=_is_index)


def make_with_state(make_model: Callable[..., _T]) -> Callable[..., tuple[_T, State]]:
    """Wraps a model constructor so that it returns `(model, state)`.

    `make_with_state(Model)(*args, **kwargs)` builds `Model(*args, **kwargs)`, gives
    every [`ecliptic.nn.StateIndex`][] a marker made from its key path (so two models
    built this way have compatible states), collects the [`ecliptic.nn.State`][], and
    deletes the initial states from the model.

    **Arguments:**

    - `make_model`: any callable returning a pytree.

    **Returns:** a callable with the signature of `make_model`, returning the
    2-tuple `(model, state)`.
    """

    def make_with_state_impl(*args: Any, **kwargs: Any) -> tuple[_T, State]:
        model = make_model(*args, **kwargs)
        pairs, treedef = jtu.tree_flatten_with_path(model, is_leaf=_is_index)
        prefix = type(model).__name__
        leaves = []
        for path, leaf in pairs:
            if _is_index(leaf):
                leaf = StateIndex(leaf.init)
                object.__setattr__(leaf, "marker", prefix + jtu.keystr(path))
            leaves.append(leaf)
        model = jtu.tree_unflatten(treedef, leaves)
        state = State(model)
        return delete_init_state(model), state

    return make_with_state_impl


class StatefulLayer(Module):
    """Base class marking a layer that may take and return a `State`.
    [`ecliptic.nn.Sequential`][] calls such a layer as `x, state = layer(x, state)`
    when `layer.is_stateful()` is true, and as `x = layer(x)` otherwise."""

    def is_stateful(self) -> bool:
        """Whether to call this layer as `(x, state) -> (x, state)`.

        **Returns:** `True` by default; subclasses may decide per instance.
        """
        return True
