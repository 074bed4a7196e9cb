"""Shared timing helpers for the benchmarks: medians of repeated timed loops, and
ratios paired per round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_us(fn: Callable[[], object], *, number: int = 0, repeat: int = 15) -> float:
    """Median time of one call of `fn`, in microseconds.

    `number` calls are timed together `repeat` times; if `number` is 0 it is chosen so
    that one timed loop takes about 20 ms.
    """
    fn()
    if number == 0:
        number = 1
        while True:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            if time.perf_counter() - start > 0.02:
                break
            number *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def rotated(names: list[str], r: int) -> list[str]:
    """`names` in the order of round `r`: rotated by `r`, so that over the rounds each
    name runs in every position."""
    k = r % len(names)
    return names[k:] + names[:k]


def paired(
    samples: dict[str, list[float]], base: str
) -> tuple[dict[str, float], dict[str, float]]:
    """`(medians, ratios)`: the median of each entry's samples (one per round), and
    the median over rounds of its ratio to `base`'s sample of the same round."""
    floor = samples[base]
    medians = {n: statistics.median(s) for n, s in samples.items()}
    ratios = {
        n: statistics.median(x / b for x, b in zip(s, floor))
        for n, s in samples.items()
    }
    return medians, ratios


def _loop_size(fn: Callable[[], object], target_s: float) -> int:
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start > target_s:
            return number
        number *= 2


def interleaved_us(
    fns: dict[str, Callable[[], object]], *, rounds: int = 21, target_s: float = 0.005
) -> tuple[dict[str, float], dict[str, float]]:
    """Time several callables in alternating rounds, so load changes hit them alike.

    Each round times one loop of every callable, in an order rotated from round to
    round. Returns the median microseconds per call of each callable and, for each,
    the median over rounds of its ratio to the first callable in `fns` (the
    baseline) in that round.
    """
    names = list(fns)
    numbers = {n: _loop_size(fns[n], target_s) for n in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in rotated(names, r):
            fn, number = fns[n], numbers[n]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[n].append((time.perf_counter() - start) / number * 1e6)
    return paired(samples, names[0])
