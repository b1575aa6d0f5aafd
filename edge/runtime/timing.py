"""Wall-clock timing of repeated calls, shared by `edge bench-steps` and the benchmark scripts."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def call_times_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> np.ndarray:
    """Milliseconds taken by each of `repeats` calls of `fn`, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - t0) * 1e3
    return times


def median_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 1) -> float:
    """Median milliseconds per call of `fn`."""
    return float(np.median(call_times_ms(fn, repeats, warmup)))
