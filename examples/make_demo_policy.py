"""Build the bundled demo policy: a small randomly initialised ACT for the 6-servo arm, exported.

    python examples/make_demo_policy.py [--out edge/data/demo_act]

The weights are random (seeded), so the arm moves but does no task; it exists so that `edge demo`
runs on a fresh install with nothing else. Inputs: observation.state (6 joints, LeRobot units:
range_m100_100 for the joints, range_0_100 for the gripper) and observation.environment_state
(a 3-D target the demo holds fixed). Statistics keep actions inside the joints' ranges.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.families.base import ExportOptions  # noqa: E402
from export.lerobot_format import save_pretrained  # noqa: E402
from export.models.act import ACTConfig, ACTPolicy  # noqa: E402
from export.pipeline import export_package  # noqa: E402

JOINTS = 6
TARGET_DIM = 3


def demo_config() -> dict:
    return {
        "type": "act",
        "n_obs_steps": 1,
        "input_features": {
            "observation.state": {"type": "STATE", "shape": [JOINTS]},
            "observation.environment_state": {"type": "ENV", "shape": [TARGET_DIM]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [JOINTS]}},
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD",
                                  "ACTION": "MEAN_STD"},
        "chunk_size": 20, "n_action_steps": 10, "vision_backbone": "resnet18",
        "pretrained_backbone_weights": None, "replace_final_stride_with_dilation": False, "pre_norm": False,
        "dim_model": 64, "n_heads": 4, "dim_feedforward": 128, "feedforward_activation": "relu",
        "n_encoder_layers": 2, "n_decoder_layers": 1, "use_vae": True, "latent_dim": 16,
        "n_vae_encoder_layers": 2, "temporal_ensemble_coeff": None, "dropout": 0.1, "kl_weight": 10.0,
    }


def demo_stats() -> dict[str, dict[str, np.ndarray]]:
    joint_mean = np.array([0, -20, 20, 10, 0, 30], np.float32)
    joint_std = np.array([15, 15, 15, 15, 15, 10], np.float32)
    return {
        "observation.state": {"mean": joint_mean, "std": joint_std * 2,
                              "min": joint_mean - 60, "max": joint_mean + 60},
        "observation.environment_state": {"mean": np.zeros(TARGET_DIM, np.float32),
                                          "std": np.ones(TARGET_DIM, np.float32) * 0.2,
                                          "min": -np.ones(TARGET_DIM, np.float32),
                                          "max": np.ones(TARGET_DIM, np.float32)},
        "action": {"mean": joint_mean, "std": joint_std, "min": joint_mean - 60, "max": joint_mean + 60},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "edge/data/demo_act")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    config = demo_config()
    model = ACTPolicy(ACTConfig.from_dict(config)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_pretrained(Path(tmp) / "pretrained_model", config, model, demo_stats())
        export_package(ckpt, args.out, ExportOptions(samples=2, seed=args.seed), force=True)


if __name__ == "__main__":
    main()
