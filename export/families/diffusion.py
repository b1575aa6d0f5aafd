"""Diffusion Policy family: an observation encoder graph and a denoiser graph, optionally a fused K-step DDIM graph.

`obs_encoder`: the normalised n_obs_steps window, each input (1, n_obs_steps, ...) → `global_cond`.
`denoiser`: noisy chunk (1, horizon, action_dim), float32 timestep (1,), global_cond → the U-Net's output;
the runtime calls it once per sampling step and does the scheduler arithmetic itself (edge/runtime/schedulers.py).
`denoise_<K>` (ExportOptions.extra["fused_steps"] = K): initial noise and global_cond → the normalised chunk
after K DDIM steps, with the scheduler's per-step constants baked in.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from edge.runtime.package import Chunking, DiffusionSection, FusedGraph
from edge.runtime.schedulers import DDIMScheduler, SchedulerConfig
from export.checkpoint import Checkpoint, load_strict
from export.errors import ExportError
from export.config_fields import build_within_memory
from export.families.base import ExportOptions, FamilyExport, GraphExport, random_inputs
from export.models.diffusion import (
    OBS_ENV_STATE,
    OBS_IMAGES,
    OBS_STATE,
    DiffusionConfig,
    DiffusionModel,
    DiffusionPolicy,
)


class ObsEncoderGraph(nn.Module):
    """Positional (1, S, ...) tensors in the manifest's input order → (1, global_cond_dim)."""

    def __init__(self, model: DiffusionModel, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *tensors: Tensor) -> Tensor:
        inputs = dict(zip(self.input_names, tensors))
        batch = {OBS_STATE: inputs[OBS_STATE]}
        if self.model.config.image_features:
            batch[OBS_IMAGES] = torch.stack([inputs[k] for k in self.model.config.image_features], dim=2)
        if self.model.config.env_state_feature:
            batch[OBS_ENV_STATE] = inputs[OBS_ENV_STATE]
        return self.model._prepare_global_conditioning(batch)


class DenoiserGraph(nn.Module):
    """One U-Net evaluation: (sample, float32 timestep, global_cond) → model output (noise or sample)."""

    def __init__(self, model: DiffusionModel):
        super().__init__()
        self.unet = model.unet

    def forward(self, sample: Tensor, timestep: Tensor, global_cond: Tensor) -> Tensor:
        return self.unet(sample, timestep, global_cond=global_cond)


class FusedDDIMGraph(nn.Module):
    """K DDIM steps unrolled: initial noise and global_cond → the denoised (normalised) chunk."""

    def __init__(self, model: DiffusionModel, scheduler: DDIMScheduler):
        super().__init__()
        self.unet = model.unet
        self.scheduler = scheduler

    def forward(self, noise: Tensor, global_cond: Tensor) -> Tensor:
        sample = noise
        for i, t in enumerate(self.scheduler.timesteps.tolist()):
            timestep = torch.full(sample.shape[:1], float(t), dtype=torch.float32)
            sample = self.scheduler.step(self.unet(sample, timestep, global_cond=global_cond), i, sample)
        return sample


def scheduler_config(config: DiffusionConfig) -> SchedulerConfig:
    """The checkpoint's noise schedule with diffusers' defaults for what LeRobot does not set."""
    return SchedulerConfig(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                           beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                           prediction_type=config.prediction_type, clip_sample=config.clip_sample,
                           clip_sample_range=config.clip_sample_range)


def build_policy(ckpt: Checkpoint) -> tuple[DiffusionConfig, DiffusionPolicy]:
    """The LeRobot-compatible PyTorch Diffusion Policy with the checkpoint's weights, in eval mode."""
    config = DiffusionConfig.from_dict(ckpt.config)
    policy = build_within_memory(lambda: DiffusionPolicy(config), "Diffusion")
    load_strict(policy, ckpt.state_dict)
    return config, policy.eval()


def fused_steps_option(options: ExportOptions, num_train_timesteps: int) -> int | None:
    """`extra["fused_steps"]` validated: None, or an integer in 1..num_train_timesteps."""
    k = options.extra.get("fused_steps")
    if k is None:
        return None
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_train_timesteps:
        raise ExportError(f"fused_steps must be an integer in 1..{num_train_timesteps} "
                         f"(num_train_timesteps), got {k!r}")
    return k


def build(ckpt: Checkpoint, options: ExportOptions) -> FamilyExport:
    config, policy = build_policy(ckpt)
    model = policy.diffusion
    sched = scheduler_config(config)
    fused_k = fused_steps_option(options, config.num_train_timesteps)
    s = config.n_obs_steps
    obs_shapes = {f.name: (1, s, *f.shape) for f in ckpt.input_features}
    chunk_shape = (1, config.horizon, config.action_dim)
    cond_shape = (1, model.global_cond_dim)
    rng = np.random.default_rng(options.seed)
    denoiser_samples = [{"sample": x["sample"],
                         "timestep": rng.integers(0, config.num_train_timesteps, (1,)).astype(np.float32),
                         "global_cond": x["global_cond"]}
                        for x in random_inputs({"sample": chunk_shape, "global_cond": cond_shape},
                                               options.samples, options.seed + 1)]
    graphs = [
        GraphExport("obs_encoder", ObsEncoderGraph(model, list(obs_shapes)), list(obs_shapes), ["global_cond"],
                    random_inputs(obs_shapes, options.samples, options.seed)),
        GraphExport("denoiser", DenoiserGraph(model), ["sample", "timestep", "global_cond"], ["model_output"],
                    denoiser_samples),
    ]
    fused = {}
    if fused_k is not None:
        name = f"denoise_{fused_k}"
        graphs.append(GraphExport(name, FusedDDIMGraph(model, DDIMScheduler(sched, fused_k)), ["noise", "global_cond"],
                                  ["action"], random_inputs({"noise": chunk_shape, "global_cond": cond_shape},
                                                            options.samples, options.seed + 2)))
        fused[name] = FusedGraph("ddim", fused_k)
    chunking = Chunking(chunk_size=config.horizon, n_action_steps=config.n_action_steps, n_obs_steps=s)
    section = DiffusionSection(sampler=config.noise_scheduler_type.lower(),
                               num_inference_steps=config.num_inference_steps or config.num_train_timesteps,
                               scheduler=sched, fused_graphs=fused)
    return FamilyExport(graphs=graphs, chunking=chunking, policy=section)
