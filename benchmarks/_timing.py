"""Shared timing helper for the benchmarks: medians of repeated timed loops."""

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
