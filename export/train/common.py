"""What every trainer shares: normalised torch batches of LeRobot-style windows, the Adam loop, saving.

A trainer supplies its LeRobot config dict, its model, the window offsets its policy reads
(n_obs_steps of observation history, a horizon of future actions) and a loss function over a
normalised batch; `train` does the rest and writes a LeRobot-format `pretrained_model/`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from export.lerobot_format import save_pretrained
from export.train.dataset import ACTION, IMAGE, statistics, windows

NORM_TYPE = {"observation.state": "STATE", "observation.environment_state": "ENV", IMAGE: "VISUAL", ACTION: "ACTION"}


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 100


def normalize_batch(batch: dict[str, np.ndarray], stats: dict[str, dict[str, np.ndarray]],
                    norm_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """Windows → float tensors normalised as LeRobot's preprocessor does (images /255 and CHW first)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if key.endswith("_is_pad"):
            out[key] = torch.from_numpy(value)
            continue
        x = value.astype(np.float32)
        if key == IMAGE:
            x = np.moveaxis(x, -1, -3) / np.float32(255)
        mode, s = norm_map[NORM_TYPE[key]], stats[key]
        if mode == "MEAN_STD":
            x = (x - s["mean"]) / (s["std"] + np.float32(1e-8))
        elif mode == "MIN_MAX":
            x = 2 * (x - s["min"]) / (s["max"] - s["min"]) - 1
        out[key] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return out


def train(model: torch.nn.Module, config: dict, data: dict[str, np.ndarray], obs_offsets: range,
          action_offsets: range, loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], out: str | Path,
          tc: TrainConfig = TrainConfig(), params: list | None = None) -> Path:
    """Train `model` with Adam on random windows for `tc.steps` steps; save a LeRobot checkpoint to `out`."""
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    stats = statistics(data)
    keys = set(config["input_features"]) | {ACTION, "episode_index"}
    data = {k: v for k, v in data.items() if k in keys}
    optimizer = torch.optim.AdamW(params if params is not None else model.parameters(), lr=tc.lr,
                                  weight_decay=tc.weight_decay)
    model.train()
    t0, running = time.monotonic(), []
    for step in range(1, tc.steps + 1):
        frames = rng.integers(0, len(data[ACTION]), tc.batch_size)
        batch = normalize_batch(windows(data, frames, obs_offsets, action_offsets), stats,
                                config["normalization_mapping"])
        loss = loss_fn(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running.append(loss.item())
        if step % tc.log_every == 0 or step == tc.steps:
            print(f"  step {step:5d}/{tc.steps}  loss {np.mean(running):.4f}  {time.monotonic() - t0:6.1f} s",
                  file=sys.stderr, flush=True)
            running = []
    model.eval()
    return save_pretrained(out, config, model, {k: v for k, v in stats.items() if k in keys})
