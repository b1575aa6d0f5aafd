"""LeRobot's VQ-BeT (Behavior Generation with Latent Actions) with identical state_dict key names.

Follows lerobot/policies/vqbet/modeling_vqbet.py and vqbet_utils.py (0.4.x) class for class, inference
only; torchvision is replaced by export/models/resnet.py + common.py and einops by plain tensor ops.
The VQ-VAE encoder and the residual-VQ EMA buffers are built (unused at inference) so that loading is
strict. `VQBeTPolicy.vqbet` is what model.safetensors' `vqbet.*` keys load into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from export.config_fields import typed_config
from export.errors import CheckpointError
from export.models.common import CenterCrop, SpatialSoftmax, feature_map_shape, resnet_trunk

OBS_STATE = "observation.state"
ACTION = "action"
VQVAE_NUM_LAYERS = 2  # LeRobot fixes the residual VQ at two layers (primary and secondary code)


@dataclass
class VQBeTConfig:
    """The subset of LeRobot's VQBeTConfig the model needs; every field read from config.json."""

    input_features: dict[str, dict]
    output_features: dict[str, dict]
    n_obs_steps: int
    n_action_pred_token: int
    action_chunk_size: int
    vision_backbone: str
    crop_shape: list[int] | None
    crop_is_random: bool
    pretrained_backbone_weights: str | None
    use_group_norm: bool
    spatial_softmax_num_keypoints: int
    vqvae_n_embed: int
    vqvae_embedding_dim: int
    vqvae_enc_hidden_dim: int
    gpt_block_size: int
    gpt_input_dim: int
    gpt_output_dim: int
    gpt_n_layer: int
    gpt_n_head: int
    gpt_hidden_dim: int
    dropout: float
    bet_softmax_temperature: float
    sequentially_select: bool

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "VQBeTConfig":
        cfg = typed_config(cls, config, "VQ-BeT")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """LeRobot's own checks plus the input layout its token interleaving assumes (one camera + state)."""
        if not self.vision_backbone.startswith("resnet"):
            raise CheckpointError(f"vision_backbone must be a ResNet variant, got {self.vision_backbone!r}")
        if self.use_group_norm and self.pretrained_backbone_weights:
            raise CheckpointError("use_group_norm with pretrained_backbone_weights: LeRobot refuses this combination")
        if len(self.image_features) != 1:
            raise CheckpointError(f"VQ-BeT takes exactly one camera, config has {len(self.image_features)}")
        other = sorted(set(self.input_features) - {OBS_STATE, *self.image_features})
        if OBS_STATE not in self.input_features or other:
            raise CheckpointError(f"VQ-BeT inputs must be {OBS_STATE!r} and one image; got {sorted(self.input_features)}")
        image_shape = self.input_features[self.image_features[0]]["shape"]
        if self.crop_shape is not None and (self.crop_shape[0] > image_shape[1] or self.crop_shape[1] > image_shape[2]):
            raise CheckpointError(f"crop_shape {self.crop_shape} does not fit in the image {image_shape}")
        if self.gpt_hidden_dim % self.gpt_n_head:
            raise CheckpointError(f"gpt_hidden_dim {self.gpt_hidden_dim} is not divisible by gpt_n_head {self.gpt_n_head}")
        if self.n_obs_steps * (len(self.input_features) + 1) + self.n_action_pred_token - 1 > self.gpt_block_size:
            raise CheckpointError("the token sequence is longer than gpt_block_size")

    @property
    def image_features(self) -> list[str]:
        return [k for k, ft in self.input_features.items() if ft["type"] == "VISUAL"]

    @property
    def state_dim(self) -> int:
        return self.input_features[OBS_STATE]["shape"][0]

    @property
    def action_dim(self) -> int:
        return self.output_features[ACTION]["shape"][0]


class VQBeTPolicy(nn.Module):
    """Holds `vqbet` so checkpoint keys (`vqbet.*`) load unchanged; inference only."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.vqbet = VQBeTModel(config)

    def predict_action_chunk(self, state: Tensor, image: Tensor, greedy: bool = False) -> Tensor:
        """(B, n_obs_steps, state_dim) and (B, n_obs_steps, C, H, W) normalised → (B, chunk, action_dim).

        Codes are drawn with torch.multinomial as LeRobot does, or taken by arg-max when `greedy`.
        """
        return self.vqbet(state, image, greedy=greedy)


class VQBeTModel(nn.Module):
    """RGB encoder + projectors → causal GPT over [image, state, action-query] tokens per step → head."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.rgb_encoder = VQBeTRgbEncoder(config)
        self.num_images = len(config.image_features)
        self.action_token = nn.Parameter(torch.randn(1, 1, config.gpt_input_dim))
        self.state_projector = MLP(config.state_dim, hidden_channels=[config.gpt_input_dim])
        self.rgb_feature_projector = MLP(self.rgb_encoder.feature_dim, hidden_channels=[config.gpt_input_dim])
        self.policy = GPT(config)
        self.action_head = VQBeTHead(config)
        # Training-only target indices; kept because the checkpoint stores them.
        num_tokens = config.n_action_pred_token + config.n_obs_steps - 1
        self.register_buffer(
            "select_target_actions_indices",
            torch.stack([torch.arange(i, i + config.action_chunk_size) for i in range(num_tokens)]),
        )

    def query_features(self, state: Tensor, img_features: Tensor) -> Tensor:
        """GPT outputs at the action-query positions: (B, n_obs_steps + n_action_pred_token - 1, gpt_output_dim).

        `img_features` (B, n_obs_steps, feature_dim) are `rgb_encoder` outputs, one per step and independent
        of each other, so a runtime may encode each frame once as it arrives.
        """
        batch_size, n_obs_steps = state.shape[:2]
        # Tokens per step: [camera, state, action query], then the extra future action queries.
        input_tokens = torch.stack(
            [
                self.rgb_feature_projector(img_features),
                self.state_projector(state),
                self.action_token.expand(batch_size, n_obs_steps, -1),
            ],
            dim=2,
        ).flatten(1, 2)
        len_additional_action_token = self.config.n_action_pred_token - 1
        future_action_tokens = self.action_token.repeat(batch_size, len_additional_action_token, 1)
        features = self.policy(torch.cat([input_tokens, future_action_tokens], dim=1))
        n_inputs = len(self.config.input_features)
        historical_act_pred_index = torch.arange(n_obs_steps) * (n_inputs + 1) + n_inputs
        if len_additional_action_token > 0:
            return torch.cat([features[:, historical_act_pred_index], features[:, -len_additional_action_token:]], 1)
        return features[:, historical_act_pred_index]

    def forward(self, state: Tensor, image: Tensor, greedy: bool = False) -> Tensor:
        """LeRobot's rollout: the chunk predicted at the current step's action query (index n_obs_steps - 1)."""
        batch_size, n_obs_steps = state.shape[:2]
        img_features = self.rgb_encoder(image.flatten(0, 1)).unflatten(0, (batch_size, n_obs_steps))
        predicted_action = self.action_head(self.query_features(state, img_features), greedy=greedy)["predicted_action"]
        return predicted_action[:, n_obs_steps - 1, :].reshape(batch_size, self.config.action_chunk_size, -1)


class VQBeTHead(nn.Module):
    """Code logits per RVQ layer (both at once, or primary then secondary) and per-code offsets."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.vqvae_model = VqVae(config)
        n_embed = config.vqvae_n_embed
        if config.sequentially_select:
            self.map_to_cbet_preds_primary_bin = MLP(config.gpt_output_dim, hidden_channels=[n_embed])
            self.map_to_cbet_preds_secondary_bin = MLP(config.gpt_output_dim + n_embed, hidden_channels=[n_embed])
        else:
            self.map_to_cbet_preds_bin = MLP(config.gpt_output_dim, hidden_channels=[VQVAE_NUM_LAYERS * n_embed])
        self.map_to_cbet_preds_offset = MLP(
            config.gpt_output_dim,
            hidden_channels=[VQVAE_NUM_LAYERS * n_embed * config.action_chunk_size * config.action_dim],
        )

    def offsets(self, x: Tensor) -> Tensor:
        """(NT, D) features → (NT, G, C, chunk * action_dim) offsets for every code of every layer."""
        return self.map_to_cbet_preds_offset(x).unflatten(1, (VQVAE_NUM_LAYERS, self.config.vqvae_n_embed, -1))

    def logits(self, x: Tensor) -> Tensor:
        """(NT, D) → (NT, G, C) code logits; not for `sequentially_select` (see primary/secondary_logits)."""
        return self.map_to_cbet_preds_bin(x).unflatten(1, (VQVAE_NUM_LAYERS, -1))

    def primary_logits(self, x: Tensor) -> Tensor:
        return self.map_to_cbet_preds_primary_bin(x)

    def secondary_logits(self, x: Tensor, primary_one_hot: Tensor) -> Tensor:
        """Secondary code logits conditioned on the chosen primary code (one-hot, float)."""
        return self.map_to_cbet_preds_secondary_bin(torch.cat((x, primary_one_hot), dim=1))

    def choose(self, logits: Tensor, greedy: bool) -> Tensor:
        """(NT, C) logits → (NT,) codes: multinomial over softmax(logits / temperature), or arg-max."""
        if greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / self.config.bet_softmax_temperature, dim=-1)
        return torch.multinomial(probs, num_samples=1)[:, 0]

    def forward(self, x: Tensor, greedy: bool = False) -> dict[str, Tensor]:
        N, T, _ = x.shape  # noqa: N806
        x = x.flatten(0, 1)
        cbet_offsets = self.offsets(x)
        if self.config.sequentially_select:
            cbet_primary_logits = self.primary_logits(x)
            sampled_primary_centers = self.choose(cbet_primary_logits, greedy)
            primary_one_hot = F.one_hot(sampled_primary_centers, num_classes=self.config.vqvae_n_embed)
            cbet_secondary_logits = self.secondary_logits(x, primary_one_hot.to(x.dtype))
            sampled_secondary_centers = self.choose(cbet_secondary_logits, greedy)
            sampled_centers = torch.stack((sampled_primary_centers, sampled_secondary_centers), dim=1)
            cbet_logits = torch.stack([cbet_primary_logits, cbet_secondary_logits], dim=1)
        else:
            cbet_logits = self.logits(x)
            sampled_centers = self.choose(cbet_logits.flatten(0, 1), greedy).view(N * T, VQVAE_NUM_LAYERS)
        sampled_offsets = cbet_offsets[
            torch.arange(N * T).unsqueeze(1), torch.arange(VQVAE_NUM_LAYERS).unsqueeze(0), sampled_centers
        ].sum(dim=1)
        decoded_action = self.vqvae_model.get_action_from_latent(
            self.vqvae_model.get_embeddings_from_code(sampled_centers)
        )
        predicted_action = decoded_action + sampled_offsets.unflatten(1, (self.config.action_chunk_size, -1))
        return {
            "cbet_logits": cbet_logits,
            "predicted_action": predicted_action.reshape(N, T, -1),
            "sampled_centers": sampled_centers,
            "decoded_action": decoded_action,
        }


class VQBeTRgbEncoder(nn.Module):
    """ResNet trunk → SpatialSoftmax keypoints → linear + ReLU; centre crop at eval (random crop is training-only)."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.center_crop = CenterCrop(config.crop_shape) if config.crop_shape is not None else None
        self.backbone = resnet_trunk(config.vision_backbone, config.use_group_norm)
        images_shape = config.input_features[config.image_features[0]]["shape"]
        dummy_shape_h_w = config.crop_shape if config.crop_shape is not None else images_shape[1:]
        feature_shape = feature_map_shape(self.backbone, (images_shape[0], *dummy_shape_h_w))
        self.pool = SpatialSoftmax(feature_shape, num_kp=config.spatial_softmax_num_keypoints)
        self.feature_dim = config.spatial_softmax_num_keypoints * 2
        self.out = nn.Linear(config.spatial_softmax_num_keypoints * 2, self.feature_dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) normalised image → (B, feature_dim)."""
        if self.center_crop is not None:
            x = self.center_crop(x)
        return self.relu(self.out(torch.flatten(self.pool(self.backbone(x)), start_dim=1)))


class VqVae(nn.Module):
    """Residual VQ with MLP encoder/decoder; inference uses the codebooks and the decoder only."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.register_buffer("discretized", torch.tensor(False))
        self.vqvae_num_layers = VQVAE_NUM_LAYERS
        self.vq_layer = ResidualVQ(VQVAE_NUM_LAYERS, config.vqvae_n_embed, config.vqvae_embedding_dim)
        chunk_dim = config.action_dim * config.action_chunk_size
        hidden = config.vqvae_enc_hidden_dim
        self.encoder = MLP(chunk_dim, hidden_channels=[hidden, hidden, config.vqvae_embedding_dim])
        self.decoder = MLP(config.vqvae_embedding_dim, hidden_channels=[hidden, hidden, chunk_dim])

    def get_embeddings_from_code(self, encoding_indices: Tensor) -> Tensor:
        """(NT, G) codes → (NT, D): the chosen codebook vectors summed over the RVQ layers."""
        return self.vq_layer.get_codebook_vector_from_indices(encoding_indices).sum(dim=0)

    def get_action_from_latent(self, latent: Tensor) -> Tensor:
        """(NT, D) latent → (NT, chunk, action_dim) decoded action chunk."""
        return self.decoder(latent).unflatten(1, (-1, self.config.action_dim))


class ResidualVQ(nn.Module):
    """Layers of VectorQuantize; only the codebook look-up is implemented (no projection: dim == codebook dim)."""

    def __init__(self, num_quantizers: int, codebook_size: int, dim: int):
        super().__init__()
        self.num_quantizers = num_quantizers
        self.layers = nn.ModuleList([VectorQuantize(codebook_size, dim) for _ in range(num_quantizers)])
        self.register_buffer("freeze_codebook", torch.tensor(False))

    @property
    def codebooks(self) -> Tensor:
        """(num_quantizers, codebook_size, dim)."""
        return torch.stack([layer._codebook.embed[0] for layer in self.layers], dim=0)

    def get_codebook_vector_from_indices(self, indices: Tensor) -> Tensor:
        """(B, num_quantizers) codes → (num_quantizers, B, dim) codebook vectors."""
        return torch.stack([self.codebooks[q][indices[:, q]] for q in range(self.num_quantizers)], dim=0)


class VectorQuantize(nn.Module):
    def __init__(self, codebook_size: int, dim: int):
        super().__init__()
        self._codebook = EuclideanCodebook(codebook_size, dim)


class EuclideanCodebook(nn.Module):
    """The EMA codebook's buffers (`embed` is the codebook; the rest is training state kept for strict loading)."""

    def __init__(self, codebook_size: int, dim: int, num_codebooks: int = 1):
        super().__init__()
        embed = torch.zeros(num_codebooks, codebook_size, dim)
        self.register_buffer("initted", torch.Tensor([True]))
        self.register_buffer("cluster_size", torch.zeros(num_codebooks, codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("embed", embed)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.gpt_hidden_dim, 3 * config.gpt_hidden_dim)
        self.c_proj = nn.Linear(config.gpt_hidden_dim, config.gpt_hidden_dim)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        size = config.gpt_block_size
        self.register_buffer("bias", torch.tril(torch.ones(size, size)).view(1, 1, size, size))
        self.gpt_n_head = config.gpt_n_head
        self.gpt_hidden_dim = config.gpt_hidden_dim

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.size()  # noqa: N806
        q, k, v = self.c_attn(x).split(self.gpt_hidden_dim, dim=2)
        k = k.view(B, T, self.gpt_n_head, C // self.gpt_n_head).transpose(1, 2)
        q = q.view(B, T, self.gpt_n_head, C // self.gpt_n_head).transpose(1, 2)
        v = v.view(B, T, self.gpt_n_head, C // self.gpt_n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.gpt_hidden_dim)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.gpt_hidden_dim)
        self.mlp = nn.Sequential(
            nn.Linear(config.gpt_hidden_dim, 4 * config.gpt_hidden_dim),
            nn.GELU(),
            nn.Linear(4 * config.gpt_hidden_dim, config.gpt_hidden_dim),
            nn.Dropout(config.dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """minGPT (nanoGPT layout): linear token embedding, learned positions, pre-LN blocks, bias-free head."""

    def __init__(self, config: VQBeTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Linear(config.gpt_input_dim, config.gpt_hidden_dim),
                "wpe": nn.Embedding(config.gpt_block_size, config.gpt_hidden_dim),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList([Block(config) for _ in range(config.gpt_n_layer)]),
                "ln_f": nn.LayerNorm(config.gpt_hidden_dim),
            }
        )
        self.lm_head = nn.Linear(config.gpt_hidden_dim, config.gpt_output_dim, bias=False)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        t = input.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=input.device).unsqueeze(0)
        x = self.transformer.drop(self.transformer.wte(input) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class MLP(nn.Sequential):
    """Linear layers with ReLU between them (none after the last), keys `0`, `2`, `4`, ..."""

    def __init__(self, in_channels: int, hidden_channels: list[int]):
        layers: list[nn.Module] = []
        in_dim = in_channels
        for hidden_dim in hidden_channels[:-1]:
            layers += [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, hidden_channels[-1]))
        super().__init__(*layers)
