"""Small random-weight policies with the reach task's inputs (state 6, environment_state 4), exported once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

STATE, ENV = "observation.state", "observation.environment_state"
NORM = {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD", "ACTION": "MEAN_STD"}
FEATURES = {"input_features": {STATE: {"type": "STATE", "shape": [6]}, ENV: {"type": "ENV", "shape": [4]}},
            "output_features": {"action": {"type": "ACTION", "shape": [6]}}, "normalization_mapping": NORM}


def task_stats() -> dict[str, dict[str, np.ndarray]]:
    joints = {"mean": np.array([0, 0, 35, 0, 0, 50], np.float32), "std": np.array([20, 50, 25, 1, 1, 1], np.float32)}
    joints |= {"min": joints["mean"] - 100, "max": joints["mean"] + 100}
    env = {"mean": np.array([0, 0.6, 0, 0], np.float32), "std": np.full(4, 0.1, np.float32)}
    env |= {"min": env["mean"] - 1, "max": env["mean"] + 1}
    return {STATE: joints, ENV: env, "action": joints}


def act_config() -> dict:
    return {"type": "act", "n_obs_steps": 1, **FEATURES,
            "chunk_size": 10, "n_action_steps": 5, "vision_backbone": "resnet18", "pretrained_backbone_weights": None,
            "replace_final_stride_with_dilation": False, "pre_norm": False, "dim_model": 32, "n_heads": 2,
            "dim_feedforward": 64, "feedforward_activation": "relu", "n_encoder_layers": 1, "n_decoder_layers": 1,
            "use_vae": True, "latent_dim": 8, "n_vae_encoder_layers": 1, "temporal_ensemble_coeff": None,
            "dropout": 0.1, "kl_weight": 10.0}


def diffusion_config() -> dict:
    return {"type": "diffusion", "n_obs_steps": 2, **FEATURES, "horizon": 8, "n_action_steps": 4,
            "vision_backbone": "resnet18", "crop_shape": None, "use_group_norm": True,
            "spatial_softmax_num_keypoints": 8, "use_separate_rgb_encoder_per_camera": False,
            "down_dims": [16, 32], "kernel_size": 3, "n_groups": 4, "diffusion_step_embed_dim": 16,
            "use_film_scale_modulation": True, "noise_scheduler_type": "DDIM", "num_train_timesteps": 100,
            "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "beta_end": 0.02,
            "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0, "num_inference_steps": 4}


def make_package(root: Path, config: dict, fused_steps: int | None = None) -> Path:
    """A random-weight checkpoint at root/pretrained_model (kept: the PyTorch backend reads it) and its package."""
    import torch

    from export.families.base import ExportOptions
    from export.lerobot_format import save_pretrained
    from export.pipeline import export_package

    torch.manual_seed(0)
    if config["type"] == "act":
        from export.models.act import ACTConfig, ACTPolicy
        model = ACTPolicy(ACTConfig.from_dict(config))
    else:
        from export.models.diffusion import DiffusionConfig, DiffusionPolicy
        model = DiffusionPolicy(DiffusionConfig.from_dict(config))
    ckpt = save_pretrained(root / "pretrained_model", config, model.eval(), task_stats())
    extra = {"fused_steps": fused_steps} if fused_steps else {}
    export_package(ckpt, root / "package", ExportOptions(samples=2, extra=extra), progress=lambda _m: None)
    return root / "package"


@pytest.fixture(scope="session")
def act_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("act"), act_config())


@pytest.fixture(scope="session")
def diffusion_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("diffusion"), diffusion_config(), fused_steps=2)
