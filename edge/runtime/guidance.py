"""Real-time chunking without gradients: steer a Diffusion chunk toward the actions already committed.

While a chunk is sampled, the robot keeps executing the committed actions (the timeline's rows from the
observation tick on). At every sampler step the x_0 prediction is blended toward them, normalised with the
action statistics: weight 1 on the first d rows (the frozen prefix, executed while this chunk computes), a weight
decaying by `decay` per row over the rest of the overlap, 0 beyond it. The graphs run as exported; only the
per-step path can be steered, so a fused K-step graph falls back to per-step calls (docs/robot_loop.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import OptionError


@dataclass(frozen=True)
class RTCOptions:
    """`decay`: weight of the soft rows, decay**(j - d + 1) on overlap row j >= d; `consistent_noise`: DDIM/DDPM
    step with the noise recomputed from the blended x_0 (the "epsilon" variant) instead of the model's."""

    decay: float = 0.8
    consistent_noise: bool = False  # chosen by measurement (docs/robot_loop.md): the x_0 variant seamed less

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay <= 1.0:
            raise OptionError(f"rtc decay must be within [0, 1], got {self.decay!r}")


def rtc_weights(rows: int, committed: int, delay: int, decay: float) -> np.ndarray:
    """(rows,) float32: 1 on the first `delay` rows, decay**(j - delay + 1) up to `committed`, 0 beyond."""
    k = min(committed, rows)
    d = min(delay, k)
    w = np.zeros(rows, np.float32)
    w[:d] = 1.0
    w[d:k] = np.float32(decay) ** np.arange(1, k - d + 1, dtype=np.float32)
    return w


class ChunkGuide:
    """A `schedulers.Guide` for one chunk or a batch of them: target rows (normalised; (horizon, action_dim) or
    (B, horizon, action_dim)) and their weights over the sampled horizon ((horizon,) or (B, horizon))."""

    def __init__(self, target: np.ndarray, weights: np.ndarray, consistent_noise: bool):
        self.target = target.astype(np.float32).reshape(-1, *target.shape[-2:])  # (B, horizon, action_dim)
        self.weights = weights.astype(np.float32).reshape(-1, weights.shape[-1], 1)  # (B, horizon, 1)
        self.rows = self.weights > 0
        self.consistent_noise = consistent_noise and bool(self.rows.any())

    def blend(self, x0: Any) -> Any:
        return x0 + self.weights * (self.target - x0)  # exactly x0 where the weight is 0

    def noise(self, eps: Any, x0: Any, sample: Any, sqrt_a: float, sqrt_b: float) -> Any:
        if not self.consistent_noise:
            return eps
        return np.where(self.rows, (sample - x0 * sqrt_a) / sqrt_b, eps).astype(np.float32)


def _guide_rows(options: RTCOptions, committed: np.ndarray, delay: int, offset: int,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(horizon, action_dim) target and (horizon,) weights for one chunk whose row `offset` is the observation tick."""
    k = min(len(committed), horizon - offset)
    target = np.zeros((horizon, committed.shape[1]), np.float32)
    target[offset:offset + k] = committed[:k]
    weights = np.zeros(horizon, np.float32)
    weights[offset:] = rtc_weights(horizon - offset, k, delay, options.decay)
    return target, weights


def chunk_guide(options: RTCOptions, committed: np.ndarray, delay: int, offset: int, horizon: int) -> ChunkGuide:
    """The guide for a horizon whose row `offset` is the observation tick; `committed` is normalised (k, dim)."""
    return ChunkGuide(*_guide_rows(options, committed, delay, offset, horizon), options.consistent_noise)


def batch_guide(options: RTCOptions, committed: list[np.ndarray], delays: list[int], offset: int, horizon: int,
                batch: int) -> ChunkGuide | None:
    """One guide for a batch of `batch` chunks, row i steered toward committed[i] (normalised; none: weight 0, which
    leaves its x_0 exactly as unsteered), rows past len(committed) (padding) unsteered; None if no row commits."""
    if not any(len(c) for c in committed):
        return None
    target = np.zeros((batch, horizon, committed[0].shape[1]), np.float32)
    weights = np.zeros((batch, horizon), np.float32)
    for i, (rows, delay) in enumerate(zip(committed, delays)):
        target[i], weights[i] = _guide_rows(options, rows, delay, offset, horizon)
    return ChunkGuide(target, weights, options.consistent_noise)
