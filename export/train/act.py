"""ACT on the reach task: L1 on the action chunk (padded steps masked) + β·KL of the CVAE latent.

The loss is LeRobot's ACTPolicy.forward (0.4.x) term for term: `l1 = (|a - â| · ~action_is_pad).mean()`
and `kld = (-½ (1 + log σ² - μ² - σ²)).sum(-1).mean()`, loss = l1 + kl_weight · kld. Inputs are the
joint state and the 4-D environment state (target, obstacle); no camera.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from export.models.act import ACTConfig, ACTPolicy
from export.train.common import TrainConfig, train
from export.train.dataset import ACTION, ENV, STATE

IMAGES = False
STEPS = 3000


def config_dict(state_dim: int = 6, env_dim: int = 4, action_dim: int = 6) -> dict:
    """A small LeRobot 0.4 ACT config.json (fields as LeRobot writes them; no vision backbone used)."""
    return {
        "type": "act",
        "n_obs_steps": 1,
        "input_features": {
            STATE: {"type": "STATE", "shape": [state_dim]},
            ENV: {"type": "ENV", "shape": [env_dim]},
        },
        "output_features": {ACTION: {"type": "ACTION", "shape": [action_dim]}},
        "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ENV": "MEAN_STD",
                                  "ACTION": "MEAN_STD"},
        "chunk_size": 20, "n_action_steps": 10, "vision_backbone": "resnet18",
        "pretrained_backbone_weights": None, "replace_final_stride_with_dilation": False, "pre_norm": False,
        "dim_model": 64, "n_heads": 4, "dim_feedforward": 256, "feedforward_activation": "relu",
        "n_encoder_layers": 2, "n_decoder_layers": 1, "use_vae": True, "latent_dim": 16,
        "n_vae_encoder_layers": 2, "temporal_ensemble_coeff": None, "dropout": 0.1, "kl_weight": 10.0,
    }


def act_loss(policy: ACTPolicy, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """LeRobot's ACTPolicy.forward on a normalised batch with a single observation step."""
    actions_hat, (mu, log_sigma_x2) = policy.model(batch)
    l1 = (F.l1_loss(batch[ACTION], actions_hat, reduction="none") * ~batch["action_is_pad"].unsqueeze(-1)).mean()
    info = {"l1_loss": l1.item()}
    if not policy.config.use_vae:
        return l1, info
    kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
    info["kld_loss"] = kld.item()
    return l1 + kld * policy.config.kl_weight, info


def squeeze_obs(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Windows carry a (B, 1, ...) observation step; ACT reads (B, ...)."""
    return {k: v[:, 0] if k in (STATE, ENV) else v for k, v in batch.items()}


def train_policy(data: dict[str, np.ndarray], out: str | Path, seed: int = 0, steps: int = STEPS,
                 lr: float = 5e-4, batch_size: int = 64, config: dict | None = None) -> Path:
    torch.manual_seed(seed)
    config = config or config_dict(data[STATE].shape[1], data[ENV].shape[1], data[ACTION].shape[1])
    policy = ACTPolicy(ACTConfig.from_dict(config))
    return train(policy, config, data, range(0, 1), range(0, config["chunk_size"]),
                 lambda batch: act_loss(policy, squeeze_obs(batch))[0], out,
                 TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-4, seed=seed,
                             log_every=max(steps // 10, 1)))
