"""Progress meters for iterative solves, usable inside `jit` (and `vmap`).

A meter is a Module with `init() -> state`, `step(state, progress) -> state` and
`close(state)`; the state is a PyTree of arrays that the solve carries along. The
display itself lives on the host: `init` opens a bar there (through a callback) and
gets back its number; `step` and `close` send the progress and that number to the
host. The number is threaded through the state, which keeps the callbacks in order.

Under `vmap` a meter shows the slowest element of the batch, and there is one bar
for the whole batch.
"""

from __future__ import annotations

import abc
import importlib.util
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from jaxtyping import Array, ArrayLike, PyTree

from .. import _messages
from .._module import Module
from .._unvmap import unvmap_all, unvmap_max, unvmap_max_p
from ._nontraceable import nonbatchable


_State = TypeVar("_State", bound=PyTree[Array])


class _Bars:
    """The host side: open bars by number."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.bars: dict[int, Any] = {}

    def open(self, make: Callable[[], Any]) -> np.ndarray:
        with self.lock:
            self.count += 1
            self.bars[self.count] = make()
            return np.array(self.count, dtype=np.int32)

    def update(
        self, show: Callable[[Any, float], None], progress: Any, ident: Any
    ) -> Any:
        with self.lock:
            # Under `vmap` the number may arrive batched (every entry equal), and the
            # progress with extra length-1 axes.
            bar = self.bars.get(int(np.unique(np.asarray(ident)).item()))
            if bar is not None:  # None e.g. on a backward pass after the bar closed
                show(bar, float(np.asarray(progress).reshape(())))
            return ident

    def close(self, finish: Callable[[Any], None], ident: Any) -> None:
        with self.lock:
            bar = self.bars.pop(int(np.asarray(ident).reshape(())), None)
            if bar is not None:
                finish(bar)


_bars = _Bars()
_IDENT = jax.ShapeDtypeStruct((), jnp.int32)


def _open(make: Callable[[], Any]) -> Array:
    # `io_callback`: opening a bar is a side effect with a result.
    return nonbatchable(io_callback(lambda: _bars.open(make), _IDENT))


def _unvmap_min(x: Array) -> Array:
    return -unvmap_max_p.bind(-jnp.asarray(x))


def _update(show: Callable[[Any, float], None], progress: Any, ident: Array) -> Array:
    progress = _unvmap_min(progress)  # the slowest element of a batch

    def host(progress_, ident_):
        return _bars.update(show, progress_, ident_)

    # The returned number is threaded through the state to keep the order.
    return jax.pure_callback(host, ident, progress, ident, vmap_method="expand_dims")


def _close(finish: Callable[[Any], None], ident: Array) -> None:
    io_callback(lambda i: _bars.close(finish, i), None, unvmap_max(ident))


class AbstractProgressMeter(Module, Generic[_State]):
    """The interface of a progress meter: how far along an iterative solve is."""

    @abc.abstractmethod
    def init(self) -> _State:
        """Starts a meter.

        **Returns:** the initial state.
        """

    @abc.abstractmethod
    def step(self, state: _State, progress: ArrayLike) -> _State:
        """Records progress; called on every step of the solve.

        **Arguments:**

        - `state`: the state from the previous step.
        - `progress`: a scalar in `[0, 1]`: how far along the solve is.

        **Returns:** the new state (the display updates as a side effect).
        """

    @abc.abstractmethod
    def close(self, state: _State) -> None:
        """Finishes the meter; called at the end of the solve.

        **Arguments:**

        - `state`: the final state.

        **Returns:** `None`.
        """


class NoProgressMeter(AbstractProgressMeter):
    """A meter that shows nothing. Takes no arguments."""

    def init(self) -> None:
        return None

    def step(self, state: Any, progress: ArrayLike) -> Any:
        del progress
        return state

    def close(self, state: Any) -> None:
        del state


class _TextState(Module):
    progress: Any
    meter_idx: Any


def _text_open() -> list[float]:
    print("0.00%")
    return [0.0]


def _text_show(bar: list[float], progress: float) -> None:
    bar[0] = progress
    print(f"{100 * progress:.2f}%")


def _text_finish(bar: list[float]) -> None:
    if bar[0] != 1:
        print("100.00%")


class TextProgressMeter(AbstractProgressMeter):
    """Prints the progress as lines of text: `0.00%`, `2.00%`, ..., `100.00%`.

    **Arguments:**

    - `minimum_increase`: a new line is printed only when the progress has grown by
        more than this since the last line (or has reached 1). Default `0.02`.
    """

    minimum_increase: Any = 0.02

    def init(self) -> _TextState:
        return _TextState(progress=jnp.array(0.0), meter_idx=_open(_text_open))

    def step(self, state: _TextState, progress: ArrayLike) -> _TextState:
        # Both the progress and the state may be batched: print when every element
        # of the batch has moved on enough.
        progress = jnp.asarray(progress, jnp.result_type(state.progress))
        moved = (progress - state.progress > self.minimum_increase) | (progress == 1)
        pred = nonbatchable(unvmap_all(moved))

        def show(ident):
            return progress, _update(_text_show, progress, ident)

        def skip(ident):
            return state.progress, ident

        new_progress, ident = lax.cond(pred, show, skip, state.meter_idx)
        return _TextState(progress=new_progress, meter_idx=ident)

    def close(self, state: _TextState) -> None:
        _close(_text_finish, state.meter_idx)


class _TqdmState(Module):
    meter_idx: Any
    step: Any


def _tqdm_open() -> Any:
    import tqdm  # pyright: ignore[reportMissingModuleSource]

    return tqdm.tqdm(
        total=100,
        unit="%",
        bar_format=(
            "{percentage:.2f}%|{bar}| [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        ),
    )


def _tqdm_show(bar: Any, progress: float) -> None:
    bar.n = round(100 * progress, 2)
    bar.update(n=0)
    bar.refresh()


def _tqdm_finish(bar: Any) -> None:
    bar.n = 100.0
    bar.update(n=0)
    bar.close()


class TqdmProgressMeter(AbstractProgressMeter):
    """Shows a `tqdm` progress bar (needs the `tqdm` package).

    **Arguments:**

    - `refresh_steps`: refresh the bar every this many steps (a refresh is a host
        callback, so not every step). Default 20.
    """

    refresh_steps: int = 20

    def __check_init__(self):
        if importlib.util.find_spec("tqdm") is None:
            raise _messages.tqdm_missing_error()

    def init(self) -> _TqdmState:
        return _TqdmState(meter_idx=_open(_tqdm_open), step=jnp.array(0))

    def step(self, state: _TqdmState, progress: ArrayLike) -> _TqdmState:
        # Batch elements that finish early stop counting: the largest count is the
        # number of steps of the whole batch.
        due = nonbatchable(unvmap_max(state.step) % self.refresh_steps == 0)
        ident = lax.cond(
            due,
            lambda i: _update(_tqdm_show, progress, i),
            lambda i: i,
            state.meter_idx,
        )
        return _TqdmState(meter_idx=ident, step=state.step + 1)

    def close(self, state: _TqdmState) -> None:
        _close(_tqdm_finish, state.meter_idx)
