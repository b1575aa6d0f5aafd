"""Diffusion Policy on the reach task: LeRobot's noise-prediction loss on a 1-D U-Net, no camera.

`diffusion_loss` is LeRobot's DiffusionModel.compute_loss (0.4.x): a timestep per sample drawn from
U{0..num_train_timesteps-1}, the clean normalised action chunk noised with diffusers' add_noise
(√ᾱ_t·x + √(1-ᾱ_t)·ε, ᾱ from the checkpoint's schedule, here edge/runtime/schedulers.py's float32 copy of
diffusers'), MSE between the U-Net output and ε (or x for prediction_type "sample"), masked by
action_is_pad when do_mask_loss_for_padding. Conditioning: n_obs_steps of [state, environment_state].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from edge.runtime.schedulers import SchedulerConfig, alphas_cumprod
from export.models.diffusion import DiffusionConfig, DiffusionPolicy
from export.train.common import TrainConfig, train
from export.train.dataset import ACTION, ENV, STATE

IMAGES = False
STEPS = 3000


def config_dict(state_dim: int = 6, env_dim: int = 4, action_dim: int = 6) -> dict:
    """A small LeRobot 0.4 DiffusionConfig config.json: DDPM training schedule, DDIM 10-step sampling."""
    return {
        "type": "diffusion",
        "n_obs_steps": 2,
        "input_features": {
            STATE: {"type": "STATE", "shape": [state_dim]},
            ENV: {"type": "ENV", "shape": [env_dim]},
        },
        "output_features": {ACTION: {"type": "ACTION", "shape": [action_dim]}},
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ENV": "MIN_MAX",
                                  "ACTION": "MIN_MAX"},
        "horizon": 16, "n_action_steps": 8, "drop_n_last_frames": 7,
        "vision_backbone": "resnet18", "resize_shape": None, "crop_ratio": 1.0, "crop_shape": None,
        "crop_is_random": True, "pretrained_backbone_weights": None, "use_group_norm": True,
        "spatial_softmax_num_keypoints": 32, "use_separate_rgb_encoder_per_camera": False,
        "down_dims": [32, 64], "kernel_size": 5, "n_groups": 8, "diffusion_step_embed_dim": 32,
        "use_film_scale_modulation": True,
        "noise_scheduler_type": "DDIM", "num_train_timesteps": 100, "beta_schedule": "squaredcos_cap_v2",
        "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": True,
        "clip_sample_range": 1.0, "num_inference_steps": 10, "do_mask_loss_for_padding": False,
    }


def schedule_alphas_cumprod(config: DiffusionConfig) -> Tensor:
    """ᾱ_t (num_train_timesteps,) float32, exactly diffusers' for the config's beta schedule."""
    return torch.from_numpy(alphas_cumprod(SchedulerConfig(
        num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start, beta_end=config.beta_end,
        beta_schedule=config.beta_schedule, prediction_type=config.prediction_type,
        clip_sample=config.clip_sample, clip_sample_range=config.clip_sample_range)))


def add_noise(alphas_cumprod_t: Tensor, sample: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
    """diffusers' DDPMScheduler.add_noise."""
    alpha = alphas_cumprod_t[timesteps].to(sample.dtype)
    sqrt_alpha = alpha.sqrt().reshape(-1, *([1] * (sample.dim() - 1)))
    sqrt_one_minus = (1 - alpha).sqrt().reshape(-1, *([1] * (sample.dim() - 1)))
    return sqrt_alpha * sample + sqrt_one_minus * noise


def diffusion_loss(policy: DiffusionPolicy, alphas_cumprod_t: Tensor, batch: dict[str, Tensor],
                   mask_padding: bool = False) -> Tensor:
    """LeRobot's DiffusionModel.compute_loss on a normalised (B, n_obs_steps, ...) / (B, horizon, ...) batch."""
    model, config = policy.diffusion, policy.config
    assert batch[STATE].shape[1] == config.n_obs_steps and batch[ACTION].shape[1] == config.horizon
    global_cond = model._prepare_global_conditioning(batch)
    trajectory = batch[ACTION]
    eps = torch.randn(trajectory.shape, device=trajectory.device)
    timesteps = torch.randint(0, config.num_train_timesteps, (trajectory.shape[0],), device=trajectory.device).long()
    noisy = add_noise(alphas_cumprod_t, trajectory, eps, timesteps)
    pred = model.unet(noisy, timesteps, global_cond=global_cond)
    target = eps if config.prediction_type == "epsilon" else trajectory
    loss = F.mse_loss(pred, target, reduction="none")
    if mask_padding:
        loss = loss * (~batch["action_is_pad"]).unsqueeze(-1)
    return loss.mean()


def train_policy(data: dict[str, np.ndarray], out: str | Path, seed: int = 0, steps: int = STEPS,
                 lr: float = 1e-3, batch_size: int = 64, config: dict | None = None) -> Path:
    torch.manual_seed(seed)
    config = config or config_dict(data[STATE].shape[1], data[ENV].shape[1], data[ACTION].shape[1])
    policy = DiffusionPolicy(DiffusionConfig.from_dict(config))
    acp = schedule_alphas_cumprod(policy.config)
    s, horizon = config["n_obs_steps"], config["horizon"]
    # LeRobot's delta_timestamps: observations [1-s, 0], actions [1-s, 1-s+horizon).
    return train(policy, config, data, range(1 - s, 1), range(1 - s, 1 - s + horizon),
                 lambda batch: diffusion_loss(policy, acp, batch, config.get("do_mask_loss_for_padding", False)),
                 out, TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-6, seed=seed,
                                  log_every=max(steps // 10, 1)))
