"""Write a checkpoint in LeRobot's `pretrained_model/` layout (0.4.x), so our own models round-trip.

Used by the demo-policy builder and the trainers: what they save, the exporter reads like any
LeRobot checkpoint (config.json, model.safetensors, pre/post-processor JSON + statistics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

PREPROCESSOR_STATS = "policy_preprocessor_step_3_normalizer_processor.safetensors"
POSTPROCESSOR_STATS = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"


def save_pretrained(path: str | Path, config: dict[str, Any], model: torch.nn.Module,
                    stats: dict[str, dict[str, np.ndarray]], eps: float = 1e-8) -> Path:
    """Write config.json, model.safetensors and the processor files LeRobot 0.4 writes; returns the dir."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config, indent=4))
    weights = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, str(root / "model.safetensors"))
    flat = {f"{feature}.{stat}": torch.tensor(np.asarray(v, dtype=np.float32))
            for feature, feature_stats in stats.items() for stat, v in feature_stats.items()}
    features = {**config["input_features"], **config["output_features"]}
    norm_map = config["normalization_mapping"]
    normalizer = {"eps": eps, "features": features, "norm_map": norm_map}
    save_file(flat, str(root / PREPROCESSOR_STATS))
    save_file(flat, str(root / POSTPROCESSOR_STATS))
    device = {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}}
    pre = {"name": "policy_preprocessor", "steps": [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        device,
        {"registry_name": "normalizer_processor", "config": normalizer, "state_file": PREPROCESSOR_STATS},
    ]}
    post = {"name": "policy_postprocessor", "steps": [
        {"registry_name": "unnormalizer_processor", "config": {"eps": eps, "features": config["output_features"],
                                                               "norm_map": norm_map},
         "state_file": POSTPROCESSOR_STATS},
        device,
    ]}
    (root / "policy_preprocessor.json").write_text(json.dumps(pre, indent=2))
    (root / "policy_postprocessor.json").write_text(json.dumps(post, indent=2))
    return root
