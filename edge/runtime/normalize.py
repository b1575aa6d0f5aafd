"""LeRobot's normaliser and unnormaliser in numpy float32, formula for formula.

Mirrors lerobot/processor/normalize_processor.py (0.4.x): MEAN_STD divides by (std + eps);
MIN_MAX / QUANTILES / QUANTILE10 map [lo, hi] to [-1, 1], with eps substituted for a zero range.
The package loader has already checked that the mode's statistics are there, finite and of the
feature's size (edge/runtime/package/checks.py `check_normalization`).
"""

from __future__ import annotations

import numpy as np

from edge.runtime.package import MODE_STATS, Normalization


class Normalizer:
    """Normalises (`__call__`) and unnormalises (`inverse`) one feature; stats reshaped to `shape`."""

    def __init__(self, norm: Normalization, shape: tuple[int, ...]):
        self.mode = norm.mode
        f32 = np.float32
        self.eps = f32(norm.eps)

        def stat(key: str) -> np.ndarray:
            return np.asarray(norm.stats[key], dtype=f32).reshape(shape)

        if self.mode == "MEAN_STD":
            self.mean, self.std = stat("mean"), stat("std")
            self.denom = self.std + self.eps
        elif self.mode != "IDENTITY":
            lo_key, hi_key = MODE_STATS[self.mode]
            self.lo = stat(lo_key)
            denom = stat(hi_key) - self.lo
            self.denom = np.where(denom == 0, self.eps, denom).astype(f32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "MEAN_STD":
            return (x - self.mean) / self.denom
        if self.mode != "IDENTITY":
            return np.float32(2) * (x - self.lo) / self.denom - np.float32(1)
        return x

    def inverse(self, x: np.ndarray) -> np.ndarray:
        if self.mode == "MEAN_STD":
            return x * self.std + self.mean
        if self.mode == "MIN_MAX":
            return (x + np.float32(1)) / np.float32(2) * self.denom + self.lo
        if self.mode != "IDENTITY":
            return (x + np.float32(1)) * self.denom / np.float32(2) + self.lo
        return x
