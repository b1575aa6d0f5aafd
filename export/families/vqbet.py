"""VQ-BeT family: graphs up to the code logits and from the chosen codes on; code sampling is the runtime's.

Graphs (batch 1, normalised tensors):
- `encoder`: one camera frame (1, C, H, W) → `image_features` (1, F), LeRobot's RGB encoder (centre
  crop, ResNet, SpatialSoftmax, linear). Frames are encoded independently, so the runtime encodes each
  frame once, when it arrives, instead of n_obs_steps frames at every new chunk.
- `policy`: the window of n_obs_steps states and image features → `logits` (1, G, C) per RVQ layer and
  `offsets` (1, G, C, chunk * action_dim) at the current action query; with `sequentially_select` it
  returns `primary_logits` (1, C) and the GPT `features` (1, D) instead of `logits`.
- `secondary` (only with `sequentially_select`): `features` and the chosen primary code one-hot
  → `secondary_logits` (1, C).
- `decode`: chosen codes one-hot (1, G, C) and `offsets` → `action` (1, chunk, action_dim): the VQ-VAE
  decoder of the summed codebook vectors plus the chosen offsets. One-hot products are exact, so
  greedy codes reproduce LeRobot's gather-and-sum bit for bit.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from edge.runtime.package import Chunking, VQBeTSection
from export.checkpoint import Checkpoint, load_strict
from export.config_fields import build_within_memory
from export.families.base import ExportOptions, FamilyExport, GraphExport, random_inputs
from export.models.vqbet import OBS_STATE, VQVAE_NUM_LAYERS, VQBeTConfig, VQBeTModel, VQBeTPolicy


class EncoderGraph(nn.Module):
    """One normalised camera frame → its RGB feature vector."""

    def __init__(self, model: VQBeTModel):
        super().__init__()
        self.rgb_encoder = model.rgb_encoder

    def forward(self, image: Tensor) -> Tensor:
        return self.rgb_encoder(image)


class PolicyGraph(nn.Module):
    """(state window, image-feature window) → code logits (or primary logits + features) and offsets, current step."""

    def __init__(self, model: VQBeTModel):
        super().__init__()
        self.model = model

    def forward(self, state: Tensor, image_features: Tensor) -> tuple[Tensor, ...]:
        cfg, head = self.model.config, self.model.action_head
        # The GPT is causal, so the current query's output does not depend on the future query tokens;
        # they are still fed, as LeRobot does.
        x = self.model.query_features(state, image_features)[:, cfg.n_obs_steps - 1]
        if cfg.sequentially_select:
            return head.primary_logits(x), x, head.offsets(x)
        return head.logits(x), head.offsets(x)


class SecondaryGraph(nn.Module):
    """GPT features and the chosen primary code (one-hot) → secondary code logits."""

    def __init__(self, model: VQBeTModel):
        super().__init__()
        self.head = model.action_head

    def forward(self, features: Tensor, primary_code: Tensor) -> Tensor:
        return self.head.secondary_logits(features, primary_code)


class DecodeGraph(nn.Module):
    """Chosen codes (one-hot per RVQ layer) and all offsets → the normalised action chunk."""

    def __init__(self, model: VQBeTModel):
        super().__init__()
        self.vqvae = model.action_head.vqvae_model
        self.action_dim = model.config.action_dim

    def forward(self, codes: Tensor, offsets: Tensor) -> Tensor:
        latent = codes.flatten(1) @ self.vqvae.vq_layer.codebooks.flatten(0, 1)  # sum of the chosen vectors
        chosen_offsets = (codes.unsqueeze(-1) * offsets).sum(dim=(1, 2))
        return self.vqvae.get_action_from_latent(latent) + chosen_offsets.unflatten(1, (-1, self.action_dim))


def build_policy(ckpt: Checkpoint) -> tuple[VQBeTConfig, VQBeTPolicy]:
    """The LeRobot-compatible PyTorch VQ-BeT with the checkpoint's weights, in eval mode."""
    config = VQBeTConfig.from_dict(ckpt.config)
    policy = build_within_memory(lambda: VQBeTPolicy(config), "VQ-BeT")
    load_strict(policy, ckpt.state_dict)
    return config, policy.eval()


def one_hot_samples(shape: tuple[int, ...], n: int, seed: int) -> list[np.ndarray]:
    """n random one-hot float32 arrays over the last axis of `shape`: plausible chosen codes."""
    rng = np.random.default_rng(seed)
    eye = np.eye(shape[-1], dtype=np.float32)
    return [eye[rng.integers(0, shape[-1], size=shape[:-1])] for _ in range(n)]


def build(ckpt: Checkpoint, options: ExportOptions) -> FamilyExport:
    config, policy = build_policy(ckpt)
    model = policy.vqbet
    n_embed, chunk_dim = config.vqvae_n_embed, config.action_chunk_size * config.action_dim
    offsets_shape = (1, VQVAE_NUM_LAYERS, n_embed, chunk_dim)
    image_key = config.image_features[0]
    image_shape = {image_key: (1, *config.input_features[image_key]["shape"])}
    window = {OBS_STATE: (1, config.n_obs_steps, config.state_dim),
              "image_features": (1, config.n_obs_steps, model.rgb_encoder.feature_dim)}
    policy_outputs = ["primary_logits", "features", "offsets"] if config.sequentially_select else ["logits", "offsets"]
    graphs = [
        GraphExport("encoder", EncoderGraph(model), [image_key], ["image_features"],
                    random_inputs(image_shape, options.samples, options.seed)),
        GraphExport("policy", PolicyGraph(model), list(window), policy_outputs,
                    random_inputs(window, options.samples, options.seed + 5)),
    ]
    if config.sequentially_select:
        features = random_inputs({"features": (1, config.gpt_output_dim)}, options.samples, options.seed + 1)
        codes = one_hot_samples((1, n_embed), options.samples, options.seed + 2)
        graphs.append(GraphExport("secondary", SecondaryGraph(model), ["features", "primary_code"],
                                  ["secondary_logits"], [{**f, "primary_code": c} for f, c in zip(features, codes)]))
    offsets = random_inputs({"offsets": offsets_shape}, options.samples, options.seed + 3)
    codes = one_hot_samples((1, VQVAE_NUM_LAYERS, n_embed), options.samples, options.seed + 4)
    graphs.append(GraphExport("decode", DecodeGraph(model), ["codes", "offsets"], ["action"],
                              [{"codes": c, **o} for c, o in zip(codes, offsets)]))
    chunking = Chunking(chunk_size=config.action_chunk_size, n_action_steps=config.action_chunk_size,
                        n_obs_steps=config.n_obs_steps)
    section = VQBeTSection(codebook_size=n_embed, bet_softmax_temperature=float(config.bet_softmax_temperature),
                           sequentially_select=config.sequentially_select, image_feature=image_key)
    return FamilyExport(graphs=graphs, chunking=chunking, policy=section)

