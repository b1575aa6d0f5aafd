"""LeRobot's feature statistics (meta/stats.json, meta/episodes' `stats/...` columns), computed with numpy.

Keys per feature, as LeRobot 0.4 writes them: min, max, mean, std, count and the quantiles q01, q10, q50, q90, q99.
Vectors get per-element statistics over an episode's frames; camera features per-channel statistics of pixels in
[0, 1], shaped (3, 1, 1), from the encoder's exact 256-bin histograms (edge/robot/record/video.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of (frames, dim) values over the frames."""
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
             "count": np.array([len(values)])}
    for key, q in zip(QUANTILE_KEYS, np.quantile(values, QUANTILES, axis=0)):
        stats[key] = q
    return stats


def histogram_stats(histogram: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Per-channel statistics, values in [0, 1], of (3, 256) pixel counts; `count` is the frames sampled."""
    levels = np.arange(256) / 255.0
    total = histogram.sum(1)
    mean = histogram @ levels / total
    std = np.sqrt(np.maximum(histogram @ levels**2 / total - mean**2, 0.0))
    cumulative = np.cumsum(histogram, 1)
    present = histogram > 0
    stats = {"min": levels[present.argmax(1)], "max": levels[255 - present[:, ::-1].argmax(1)], "mean": mean,
             "std": std}
    for key, q in zip(QUANTILE_KEYS, QUANTILES):
        stats[key] = levels[(cumulative < q * total[:, None]).sum(1)]
    shaped = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    shaped["count"] = np.array([frames])
    return shaped


def aggregate(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from episodes' (as LeRobot's aggregate_stats): exact min, max, count-weighted mean and
    pooled std; quantiles count-weighted means of the episodes' (LeRobot's approximation too)."""
    counts = np.array([float(e["count"][0]) for e in episodes])
    weights = counts / counts.sum()

    def weighted(key: str) -> np.ndarray:
        return sum(w * e[key] for w, e in zip(weights, episodes))

    mean = weighted("mean")
    variance = sum(w * (e["std"] ** 2 + (e["mean"] - mean) ** 2) for w, e in zip(weights, episodes))
    out = {"min": np.min([e["min"] for e in episodes], 0), "max": np.max([e["max"] for e in episodes], 0),
           "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}
    for key in QUANTILE_KEYS:
        out[key] = weighted(key)
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Nested lists, as stats.json holds them."""
    return {feature: {k: np.asarray(v).tolist() for k, v in s.items()} for feature, s in stats.items()}
