"""VQ-BeT trainer for the reach task: LeRobot's two phases on the project's LeRobot-compatible model.

Phase 1 (LeRobot's `discretize`, `n_vqvae_training_steps`): the residual VQ-VAE learns to encode
action chunks (sliding windows of `action_chunk_size` over each training window's actions): an MLP
encoder, two EMA codebooks (decay 0.8, nearest-code assignment, straight-through), an MLP decoder;
loss = L1 reconstruction + 5 * commitment (MSE of the encoder output to its detached codes, summed
over the two layers). Then the codebooks are frozen (`discretized`, `freeze_codebook` set). One
addition to LeRobot's settings: dead codes are re-seeded from the batch early in phase 1
(vector_quantize_pytorch's `threshold_ema_dead_code`), else the primary codebook collapses here.

Phase 2 (LeRobot's `VQBeTHead.loss_fn`): the RGB encoder, projectors, GPT and the code/offset heads
learn, with the VQ-VAE frozen. For every action query token (n_obs_steps historical + the future ones)
the target chunk's codes come from the frozen encoder + RVQ; loss = focal loss (gamma 2) on the primary
code * primary_code_loss_weight + focal loss on the secondary code * secondary_code_loss_weight +
offset_loss_weight * L1(target chunk, decoded sampled codes + their offsets). As in LeRobot, the
offsets are gathered at the codes *sampled* (multinomial, bet_softmax_temperature) from the predicted
logits, and the decoded part carries no gradient.

Images go through LeRobot's RGB encoder, with its training-time random crop when the config has a
`crop_shape` (one crop offset per batch, as torchvision's RandomCrop does on a batched tensor). The
reach task's config has none: a crop would shift where the target appears, and here the policy must
read absolute positions from a 48x48 frame. The backbone keeps torchvision's BatchNorm
(`use_group_norm: false`, which LeRobot allows without pretrained weights): with GroupNorm, LeRobot's
default, 3000 phase-2 steps reached 44% closed-loop success on the task; with BatchNorm, 94%. The
saved checkpoint is a LeRobot `pretrained_model/` the exporter reads like any other.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from export.errors import ExportError
from export.lerobot_format import save_pretrained
from export.models.vqbet import VQBeTConfig, VQBeTPolicy
from export.train.common import normalize_batch
from export.train.dataset import ACTION, IMAGE, STATE, statistics, windows

IMAGES = True

# LeRobot 0.4 VQBeTConfig fields (config.json), scaled down for a 48x48 camera and a 2-core CPU.
# LeRobot's VQ-BeT takes observation.state and exactly one camera (no environment_state): the target
# and the obstacle are seen in the image.
CONFIG: dict = {
    "type": "vqbet",
    "n_obs_steps": 2,
    "input_features": {STATE: {"type": "STATE", "shape": [6]}, IMAGE: {"type": "VISUAL", "shape": [3, 48, 48]}},
    "output_features": {ACTION: {"type": "ACTION", "shape": [6]}},
    "device": "cpu",
    "use_amp": False,
    "push_to_hub": False,
    "repo_id": None,
    "private": None,
    "tags": None,
    "license": None,
    "pretrained_path": None,
    "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
    "n_action_pred_token": 3,
    "action_chunk_size": 5,
    "vision_backbone": "resnet18",
    "crop_shape": None,  # no random crop: the 48x48 frame is the whole task space, positions are absolute
    "crop_is_random": True,
    "pretrained_backbone_weights": None,
    "use_group_norm": False,  # BatchNorm: from scratch it learnt the scene in the same steps, GroupNorm did not
    "spatial_softmax_num_keypoints": 16,
    "n_vqvae_training_steps": 1500,
    "vqvae_n_embed": 16,
    "vqvae_embedding_dim": 32,
    "vqvae_enc_hidden_dim": 64,
    "gpt_block_size": 32,
    "gpt_input_dim": 96,
    "gpt_output_dim": 96,
    "gpt_n_layer": 2,
    "gpt_n_head": 4,
    "gpt_hidden_dim": 96,
    "dropout": 0.1,
    "offset_loss_weight": 10000.0,
    "primary_code_loss_weight": 5.0,
    "secondary_code_loss_weight": 0.5,
    "bet_softmax_temperature": 0.1,
    "sequentially_select": False,
    "optimizer_lr": 1e-3,
    "optimizer_betas": [0.95, 0.999],
    "optimizer_eps": 1e-8,
    "optimizer_weight_decay": 1e-6,
    "optimizer_vqvae_lr": 1e-3,
    "optimizer_vqvae_weight_decay": 1e-4,
    "scheduler_warmup_steps": 50,
}

STEPS = 3000  # phase-2 (GPT) steps by default (about 23 min on one CPU thread); phase 1 runs n_vqvae_training_steps
BATCH_SIZE = 32
VQVAE_BATCH_SIZE = 64
COMMITMENT_WEIGHT = 5.0  # LeRobot's VqVae.vqvae_forward: rep_loss = recon + vq_loss * 5
EMA_DECAY = 0.8  # vector_quantize_pytorch's default, which LeRobot's ResidualVQ uses
EMA_EPS = 1e-5
# Without dead-code re-seeding, LeRobot's kaiming-uniform codebooks (tiny next to the encoder's outputs)
# leave the primary layer on one or two codes here, so the code heads cannot carry the left/right choice.
DEAD_CODE_THRESHOLD = 2.0  # vector_quantize_pytorch's EuclideanCodebook default
DEAD_CODE_STEPS = 0.7  # fraction of phase 1 with re-seeding on


def make_config(**overrides) -> dict:
    """CONFIG with `overrides` (top-level keys) applied."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in CONFIG.items()}
    unknown = set(overrides) - set(config)
    if unknown:
        raise ExportError(f"unknown VQ-BeT config field(s) {sorted(unknown)}")
    config.update(overrides)
    return config


def offsets(config: dict) -> tuple[range, range]:
    """LeRobot's observation_delta_indices and action_delta_indices."""
    n_obs = config["n_obs_steps"]
    return range(1 - n_obs, 1), range(1 - n_obs, config["n_action_pred_token"] + config["action_chunk_size"] - 1)


def build_model(config: dict, seed: int = 0) -> VQBeTPolicy:
    """The export-side VQ-BeT initialised as LeRobot initialises it (minGPT init, kaiming-uniform codebooks)."""
    torch.manual_seed(seed)
    policy = VQBeTPolicy(VQBeTConfig.from_dict(config))
    gpt = policy.vqbet.policy
    for module in gpt.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for name, p in gpt.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config["gpt_n_layer"]))
    for layer in policy.vqbet.action_head.vqvae_model.vq_layer.layers:
        cb = layer._codebook
        embed = torch.empty_like(cb.embed)
        nn.init.kaiming_uniform_(embed)
        cb.embed.copy_(embed)
        cb.embed_avg.copy_(embed)
        cb.cluster_size.zero_()
    return policy


# --- phase 1: residual VQ-VAE --------------------------------------------------------------------


def rvq(vq_layer: nn.Module, x: Tensor, update: bool, dead_code_threshold: float = 0.0,
        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """LeRobot's ResidualVQ forward (training mode): (straight-through quantized (B, D), codes (B, G),
    commitment losses (G,)). With `update`, each codebook takes an EMA step toward its assigned inputs,
    and codes whose EMA cluster size is below `dead_code_threshold` are replaced by random inputs of the
    batch (vector_quantize_pytorch's `threshold_ema_dead_code`; LeRobot leaves it at 0, off)."""
    residual, quantized_out, codes, losses = x, torch.zeros_like(x), [], []
    for layer in vq_layer.layers:
        cb = layer._codebook
        embed = cb.embed[0].detach()
        ind = torch.cdist(residual.detach(), embed).argmin(dim=-1)
        onehot = F.one_hot(ind, embed.shape[0]).to(x.dtype)
        quantize = onehot @ embed
        if update:
            with torch.no_grad():
                cb.cluster_size[0].lerp_(onehot.sum(0), 1 - EMA_DECAY)
                cb.embed_avg[0].lerp_(onehot.T @ residual.detach(), 1 - EMA_DECAY)
                size = cb.cluster_size
                size = (size + EMA_EPS) / (size.sum(-1, keepdim=True) + size.shape[-1] * EMA_EPS) * size.sum(-1, keepdim=True)
                cb.embed.copy_(cb.embed_avg / size.unsqueeze(-1))
                dead = cb.cluster_size[0] < dead_code_threshold
                if dead.any():
                    pick = torch.randint(0, len(residual), (int(dead.sum()),), generator=generator)
                    cb.embed[0][dead] = residual.detach()[pick]
                    cb.cluster_size[0][dead] = dead_code_threshold
                    cb.embed_avg[0][dead] = residual.detach()[pick] * dead_code_threshold
        losses.append(F.mse_loss(quantize.detach(), residual))
        quantize = residual + (quantize - residual).detach()
        residual = residual - quantize.detach()
        quantized_out = quantized_out + quantize
        codes.append(ind)
    return quantized_out, torch.stack(codes, dim=-1), torch.stack(losses)


def action_chunks(actions: Tensor, chunk: int) -> Tensor:
    """LeRobot's `discretize` windowing: (B, L, A) → every (B', chunk, A) sliding window, window-major."""
    return torch.cat([actions[:, j : j + chunk] for j in range(actions.shape[1] + 1 - chunk)], dim=0)


def vqvae_loss(policy: VQBeTPolicy, actions: Tensor, update: bool = True, dead_code_threshold: float = 0.0,
               generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """LeRobot's VqVae.vqvae_forward on the sliding chunks of `actions` (B, L, A) (normalised)."""
    vqvae = policy.vqbet.action_head.vqvae_model
    x = action_chunks(actions, policy.config.action_chunk_size).flatten(1)
    quantized, codes, commit = rvq(vqvae.vq_layer, vqvae.encoder(x), update, dead_code_threshold, generator)
    recon = (x - vqvae.decoder(quantized)).abs().mean()
    loss = recon + commit.sum() * COMMITMENT_WEIGHT
    used = [len(torch.unique(codes[:, i])) for i in range(codes.shape[1])]
    return loss, {"recon_l1": recon.item(), "primary_codes": used[0], "secondary_codes": used[1]}


@torch.no_grad()
def chunk_codes(policy: VQBeTPolicy, chunks: Tensor) -> Tensor:
    """LeRobot's VqVae.get_code: (NT, chunk, A) → (NT, G) codes of the frozen encoder + RVQ."""
    vqvae = policy.vqbet.action_head.vqvae_model
    return rvq(vqvae.vq_layer, vqvae.encoder(chunks.flatten(1)), update=False)[1]


# --- phase 2: GPT and heads ----------------------------------------------------------------------


def focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """LeRobot's FocalLoss (miniBET): mean over rows of -(1 - p_t)^gamma * log p_t."""
    logpt = F.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (-((1 - logpt.exp()) ** gamma) * logpt).mean()


def encode_images(policy: VQBeTPolicy, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """(B, S, C, H, W) → (B, S, F) with the RGB encoder; in training mode with `crop_is_random` one random
    crop for the whole batch (torchvision RandomCrop on a batched tensor), else the centre crop."""
    encoder, cfg = policy.vqbet.rgb_encoder, policy.config
    x = images.flatten(0, 1)
    if cfg.crop_shape is not None:
        if encoder.training and cfg.crop_is_random:
            (h, w), (th, tw) = x.shape[-2:], cfg.crop_shape
            top = int(torch.randint(0, h - th + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - tw + 1, (1,), generator=generator))
            x = x[..., top : top + th, left : left + tw]
        else:
            x = encoder.center_crop(x)
    features = encoder.relu(encoder.out(torch.flatten(encoder.pool(encoder.backbone(x)), start_dim=1)))
    return features.unflatten(0, images.shape[:2])


def bet_loss(policy: VQBeTPolicy, config: dict, batch: dict[str, Tensor],
             generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """LeRobot's VQBeTModel.forward(rollout=False) + VQBeTHead.loss_fn on a normalised batch."""
    model, cfg = policy.vqbet, policy.config
    head = model.action_head
    x = model.query_features(batch[STATE], encode_images(policy, batch[IMAGE], generator))
    n, t, _ = x.shape
    x = x.flatten(0, 1)
    cbet_offsets = head.offsets(x)  # (NT, G, C, chunk * A)
    if cfg.sequentially_select:
        primary = head.primary_logits(x)
        primary_code = torch.multinomial(torch.softmax(primary / cfg.bet_softmax_temperature, -1), 1)[:, 0]
        secondary = head.secondary_logits(x, F.one_hot(primary_code, cfg.vqvae_n_embed).to(x.dtype))
        secondary_code = torch.multinomial(torch.softmax(secondary / cfg.bet_softmax_temperature, -1), 1)[:, 0]
        sampled = torch.stack([primary_code, secondary_code], dim=1)
        logits = torch.stack([primary, secondary], dim=1)
    else:
        logits = head.logits(x)  # (NT, G, C)
        probs = torch.softmax(logits / cfg.bet_softmax_temperature, dim=-1)
        sampled = torch.multinomial(probs.flatten(0, 1), 1).view(n * t, -1)
    layers = torch.arange(sampled.shape[1]).unsqueeze(0)
    sampled_offsets = cbet_offsets[torch.arange(n * t).unsqueeze(1), layers, sampled].sum(dim=1)
    with torch.no_grad():
        decoded = head.vqvae_model.get_action_from_latent(head.vqvae_model.get_embeddings_from_code(sampled))
    predicted = decoded + sampled_offsets.unflatten(1, (cfg.action_chunk_size, -1))
    target = batch[ACTION][:, model.select_target_actions_indices].flatten(0, 1)  # (NT, chunk, A)
    codes = chunk_codes(policy, target)
    offset_loss = F.l1_loss(target, predicted)
    primary_loss = focal_loss(logits[:, 0], codes[:, 0])
    secondary_loss = focal_loss(logits[:, 1], codes[:, 1])
    loss = (primary_loss * config["primary_code_loss_weight"] + secondary_loss * config["secondary_code_loss_weight"]
            + config["offset_loss_weight"] * offset_loss)
    return loss, {"primary": primary_loss.item(), "secondary": secondary_loss.item(), "offset_l1": offset_loss.item(),
                  "primary_hit": float((sampled[:, 0] == codes[:, 0]).float().mean())}


def _param_groups(policy: VQBeTPolicy, config: dict) -> list[dict]:
    """LeRobot's get_optim_params for phase 2 (the VQ-VAE is frozen, so left out): minGPT's decay split."""
    model = policy.vqbet
    decay, no_decay = [], []
    for name, p in model.policy.named_parameters():
        (decay if name.endswith("weight") and p.ndim >= 2 and "wpe" not in name else no_decay).append(p)
    frozen = {id(p) for p in model.action_head.vqvae_model.parameters()} | {id(p) for p in model.policy.parameters()}
    decay += [p for p in model.parameters() if id(p) not in frozen]
    return [{"params": decay, "weight_decay": config["optimizer_weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0}]


def _log(phase: str, step: int, steps: int, values: list[dict], t0: float) -> None:
    mean = {k: np.mean([v[k] for v in values]) for k in values[0]}
    text = "  ".join(f"{k} {v:.4f}" for k, v in mean.items())
    print(f"  {phase} {step:5d}/{steps}  {text}  {time.monotonic() - t0:6.1f} s", file=sys.stderr, flush=True)


def train_vqvae(policy: VQBeTPolicy, config: dict, data: dict[str, np.ndarray], stats: dict, steps: int,
                batch_size: int = VQVAE_BATCH_SIZE, seed: int = 0, log_every: int = 250,
                dead_code_threshold: float = DEAD_CODE_THRESHOLD) -> list[float]:
    """Phase 1; returns the per-step losses. Leaves the codebooks frozen and `discretized` set.

    Dead codes are re-seeded from the batch during the first DEAD_CODE_STEPS of the steps only, so the
    codebooks and the decoder settle together before the end."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    obs_offsets, action_offsets = offsets(config)
    vqvae = policy.vqbet.action_head.vqvae_model
    actions_only = {k: data[k] for k in (ACTION, "episode_index")}
    optimizer = torch.optim.AdamW([*vqvae.encoder.parameters(), *vqvae.decoder.parameters()],
                                  lr=config["optimizer_vqvae_lr"], betas=tuple(config["optimizer_betas"]),
                                  eps=config["optimizer_eps"], weight_decay=config["optimizer_vqvae_weight_decay"])
    vqvae.train()
    losses, logs, t0 = [], [], time.monotonic()
    for step in range(1, steps + 1):
        frames = rng.integers(0, len(data[ACTION]), batch_size)
        batch = normalize_batch(windows(actions_only, frames, obs_offsets, action_offsets), stats,
                                config["normalization_mapping"])
        threshold = dead_code_threshold if step <= DEAD_CODE_STEPS * steps else 0.0
        loss, info = vqvae_loss(policy, batch[ACTION], dead_code_threshold=threshold, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        logs.append({"loss": losses[-1], **info})
        if step % log_every == 0 or step == steps:
            _log("vqvae", step, steps, logs, t0)
            logs = []
    vqvae.discretized.fill_(True)
    vqvae.vq_layer.freeze_codebook.fill_(True)
    vqvae.eval()
    return losses


def train_bet(policy: VQBeTPolicy, config: dict, data: dict[str, np.ndarray], stats: dict, steps: int,
              batch_size: int = BATCH_SIZE, seed: int = 0, log_every: int = 50) -> list[float]:
    """Phase 2 (after train_vqvae); returns the per-step losses. Linear warm-up, then cosine decay."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    obs_offsets, action_offsets = offsets(config)
    optimizer = torch.optim.AdamW(_param_groups(policy, config), lr=config["optimizer_lr"],
                                  betas=tuple(config["optimizer_betas"]), eps=config["optimizer_eps"])
    warmup = min(config["scheduler_warmup_steps"], max(steps // 5, 1))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    policy.train()
    policy.vqbet.action_head.vqvae_model.eval()
    losses, logs, t0 = [], [], time.monotonic()
    for step in range(1, steps + 1):
        frames = rng.integers(0, len(data[ACTION]), batch_size)
        batch = normalize_batch(windows(data, frames, obs_offsets, action_offsets), stats,
                                config["normalization_mapping"])
        loss, info = bet_loss(policy, config, batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        logs.append({"loss": losses[-1], **info})
        if step % log_every == 0 or step == steps:
            _log("bet", step, steps, logs, t0)
            logs = []
    policy.eval()
    return losses


def train_policy(data: dict[str, np.ndarray], out: str | Path, seed: int = 0, steps: int = STEPS,
                 vqvae_steps: int | None = None, batch_size: int = BATCH_SIZE, config: dict | None = None,
                 history: dict | None = None) -> Path:
    """Train VQ-BeT on `data` (with camera frames) and save a LeRobot pretrained_model/ to `out`.

    `steps` are phase-2 steps; phase 1 runs `vqvae_steps` (default: config n_vqvae_training_steps).
    `history`, if given, receives the per-step losses under "vqvae" and "bet".
    """
    if IMAGE not in data:
        raise ExportError("VQ-BeT needs camera frames: generate the data with images=True")
    config = make_config() if config is None else config
    if vqvae_steps is None:
        vqvae_steps = config["n_vqvae_training_steps"]
    config = {**config, "n_vqvae_training_steps": vqvae_steps}
    keys = set(config["input_features"]) | {ACTION}
    stats = {k: v for k, v in statistics(data).items() if k in keys}
    data = {k: v for k, v in data.items() if k in keys | {"episode_index"}}
    policy = build_model(config, seed)
    vq_losses = train_vqvae(policy, config, data, stats, vqvae_steps, seed=seed)
    bet_losses = train_bet(policy, config, data, stats, steps, batch_size=batch_size, seed=seed)
    if history is not None:
        history.update(vqvae=vq_losses, bet=bet_losses)
    return save_pretrained(out, config, policy, stats)
