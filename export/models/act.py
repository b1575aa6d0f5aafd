"""LeRobot's ACT (Action Chunking Transformer) with identical state_dict key names.

Follows lerobot/policies/act/modeling_act.py (0.4.x) class for class, so a diff against it reads
easily; torchvision is replaced by export/models/resnet.py and einops by plain tensor ops.
`ACTPolicy.model` is what model.safetensors' `model.*` keys load into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from export.config_fields import typed_config
from export.errors import CheckpointError
from export.models.resnet import FrozenBatchNorm2d, ResNet

OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGES = "observation.images"
ACTION = "action"


@dataclass
class ACTConfig:
    """The subset of LeRobot's ACTConfig the model needs; every field read from config.json."""

    input_features: dict[str, dict]
    output_features: dict[str, dict]
    chunk_size: int
    n_action_steps: int
    vision_backbone: str
    replace_final_stride_with_dilation: bool
    pre_norm: bool
    dim_model: int
    n_heads: int
    dim_feedforward: int
    feedforward_activation: str
    n_encoder_layers: int
    n_decoder_layers: int
    use_vae: bool
    latent_dim: int
    n_vae_encoder_layers: int
    temporal_ensemble_coeff: float | None
    dropout: float
    kl_weight: float = 10.0
    n_obs_steps: int = 1

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ACTConfig":
        return typed_config(cls, config, "ACT")

    @property
    def robot_state_feature(self) -> dict | None:
        return self.input_features.get(OBS_STATE)

    @property
    def env_state_feature(self) -> dict | None:
        return self.input_features.get(OBS_ENV_STATE)

    @property
    def image_features(self) -> list[str]:
        return [k for k, ft in self.input_features.items() if ft["type"] == "VISUAL"]

    @property
    def action_dim(self) -> int:
        return self.output_features[ACTION]["shape"][0]


class ACTPolicy(nn.Module):
    """Holds `model` so checkpoint keys (`model.*`) load unchanged; chunk prediction only."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.config = config
        self.model = ACT(config)

    def predict_action_chunk(self, batch: dict[str, Tensor]) -> Tensor:
        if self.config.image_features:
            batch = dict(batch)
            batch[OBS_IMAGES] = [batch[key] for key in self.config.image_features]
        return self.model(batch)[0]


class ACT(nn.Module):
    """Action Chunking Transformer: a transformer encoder-decoder over [latent, state, env, image pixels]."""

    def __init__(self, config: ACTConfig):
        super().__init__()
        self.config = config

        if config.use_vae:
            self.vae_encoder = ACTEncoder(config, is_vae_encoder=True)
            self.vae_encoder_cls_embed = nn.Embedding(1, config.dim_model)
            if config.robot_state_feature:
                self.vae_encoder_robot_state_input_proj = nn.Linear(
                    config.robot_state_feature["shape"][0], config.dim_model
                )
            self.vae_encoder_action_input_proj = nn.Linear(config.action_dim, config.dim_model)
            self.vae_encoder_latent_output_proj = nn.Linear(config.dim_model, config.latent_dim * 2)
            num_input_token_encoder = 1 + config.chunk_size + (1 if config.robot_state_feature else 0)
            self.register_buffer(
                "vae_encoder_pos_enc",
                create_sinusoidal_pos_embedding(num_input_token_encoder, config.dim_model).unsqueeze(0),
            )

        if config.image_features:
            self.backbone = ResNet(
                config.vision_backbone,
                norm_layer=FrozenBatchNorm2d,
                replace_stride_with_dilation=(False, False, config.replace_final_stride_with_dilation),
            )
            # LeRobot keeps only up to layer4 (IntermediateLayerGetter): no avgpool/fc weights.
            backbone_out = self.backbone.fc.in_features
            del self.backbone.fc, self.backbone.avgpool

        self.encoder = ACTEncoder(config)
        self.decoder = ACTDecoder(config)

        if config.robot_state_feature:
            self.encoder_robot_state_input_proj = nn.Linear(config.robot_state_feature["shape"][0], config.dim_model)
        if config.env_state_feature:
            self.encoder_env_state_input_proj = nn.Linear(config.env_state_feature["shape"][0], config.dim_model)
        self.encoder_latent_input_proj = nn.Linear(config.latent_dim, config.dim_model)
        if config.image_features:
            self.encoder_img_feat_input_proj = nn.Conv2d(backbone_out, config.dim_model, kernel_size=1)
        n_1d_tokens = 1 + bool(config.robot_state_feature) + bool(config.env_state_feature)
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d_tokens, config.dim_model)
        if config.image_features:
            self.encoder_cam_feat_pos_embed = ACTSinusoidalPositionEmbedding2d(config.dim_model // 2)

        self.decoder_pos_embed = nn.Embedding(config.chunk_size, config.dim_model)
        self.action_head = nn.Linear(config.dim_model, config.action_dim)

        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for p in chain(self.encoder.parameters(), self.decoder.parameters()):
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor] | tuple[None, None]]:
        """(B, chunk_size, action_dim) actions and the latent's (mu, log_sigma_x2) when training the VAE."""
        cfg = self.config
        batch_size = batch[OBS_IMAGES][0].shape[0] if OBS_IMAGES in batch else batch[OBS_ENV_STATE].shape[0]

        if cfg.use_vae and ACTION in batch and self.training:
            cls_embed = self.vae_encoder_cls_embed.weight.unsqueeze(0).expand(batch_size, -1, -1)
            action_embed = self.vae_encoder_action_input_proj(batch[ACTION])
            vae_encoder_input = [cls_embed, action_embed]
            if cfg.robot_state_feature:
                robot_state_embed = self.vae_encoder_robot_state_input_proj(batch[OBS_STATE]).unsqueeze(1)
                vae_encoder_input = [cls_embed, robot_state_embed, action_embed]
            vae_encoder_input = torch.cat(vae_encoder_input, dim=1)
            pos_embed = self.vae_encoder_pos_enc.clone().detach()
            cls_joint_is_pad = torch.full((batch_size, 2 if cfg.robot_state_feature else 1), False,
                                          device=batch[ACTION].device)
            key_padding_mask = torch.cat([cls_joint_is_pad, batch["action_is_pad"]], dim=1)
            cls_token_out = self.vae_encoder(vae_encoder_input.permute(1, 0, 2), pos_embed=pos_embed.permute(1, 0, 2),
                                             key_padding_mask=key_padding_mask)[0]
            latent_pdf_params = self.vae_encoder_latent_output_proj(cls_token_out)
            mu = latent_pdf_params[:, : cfg.latent_dim]
            log_sigma_x2 = latent_pdf_params[:, cfg.latent_dim :]
            latent_sample = mu + log_sigma_x2.div(2).exp() * torch.randn_like(mu)
        else:
            mu = log_sigma_x2 = None
            device = (batch[OBS_IMAGES][0] if OBS_IMAGES in batch else batch[OBS_ENV_STATE]).device
            latent_sample = torch.zeros([batch_size, cfg.latent_dim], dtype=torch.float32, device=device)

        encoder_in_tokens = [self.encoder_latent_input_proj(latent_sample)]
        encoder_in_pos_embed = list(self.encoder_1d_feature_pos_embed.weight.unsqueeze(1))
        if cfg.robot_state_feature:
            encoder_in_tokens.append(self.encoder_robot_state_input_proj(batch[OBS_STATE]))
        if cfg.env_state_feature:
            encoder_in_tokens.append(self.encoder_env_state_input_proj(batch[OBS_ENV_STATE]))

        if cfg.image_features:
            for img in batch[OBS_IMAGES]:
                cam_features = self.backbone.feature_map(img)
                cam_pos_embed = self.encoder_cam_feat_pos_embed(cam_features).to(dtype=cam_features.dtype)
                cam_features = self.encoder_img_feat_input_proj(cam_features)
                # (B, C, H, W) -> (H*W, B, C)
                cam_features = cam_features.flatten(2).permute(2, 0, 1)
                cam_pos_embed = cam_pos_embed.flatten(2).permute(2, 0, 1)
                encoder_in_tokens.extend(list(cam_features))
                encoder_in_pos_embed.extend(list(cam_pos_embed))

        encoder_in_tokens = torch.stack(encoder_in_tokens, dim=0)
        encoder_in_pos_embed = torch.stack(encoder_in_pos_embed, dim=0)

        encoder_out = self.encoder(encoder_in_tokens, pos_embed=encoder_in_pos_embed)
        decoder_in = torch.zeros((cfg.chunk_size, batch_size, cfg.dim_model), dtype=encoder_in_pos_embed.dtype,
                                 device=encoder_in_pos_embed.device)
        decoder_out = self.decoder(decoder_in, encoder_out, encoder_pos_embed=encoder_in_pos_embed,
                                   decoder_pos_embed=self.decoder_pos_embed.weight.unsqueeze(1))
        decoder_out = decoder_out.transpose(0, 1)
        actions = self.action_head(decoder_out)
        return actions, (mu, log_sigma_x2)


class ACTEncoder(nn.Module):
    """A stack of encoder layers, followed by a LayerNorm when pre_norm."""

    def __init__(self, config: ACTConfig, is_vae_encoder: bool = False):
        super().__init__()
        self.is_vae_encoder = is_vae_encoder
        num_layers = config.n_vae_encoder_layers if is_vae_encoder else config.n_encoder_layers
        self.layers = nn.ModuleList([ACTEncoderLayer(config) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(config.dim_model) if config.pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos_embed=pos_embed, key_padding_mask=key_padding_mask)
        return self.norm(x)


class ACTEncoderLayer(nn.Module):
    def __init__(self, config: ACTConfig):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.activation = get_activation_fn(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    def forward(self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x if pos_embed is None else x + pos_embed
        x = self.self_attn(q, k, value=x, key_padding_mask=key_padding_mask)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout2(x)
        if not self.pre_norm:
            x = self.norm2(x)
        return x


class ACTDecoder(nn.Module):
    def __init__(self, config: ACTConfig):
        super().__init__()
        self.layers = nn.ModuleList([ACTDecoderLayer(config) for _ in range(config.n_decoder_layers)])
        self.norm = nn.LayerNorm(config.dim_model)

    def forward(self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor | None = None,
                encoder_pos_embed: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, encoder_out, decoder_pos_embed=decoder_pos_embed, encoder_pos_embed=encoder_pos_embed)
        return self.norm(x)


class ACTDecoderLayer(nn.Module):
    def __init__(self, config: ACTConfig):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.multihead_attn = nn.MultiheadAttention(config.dim_model, config.n_heads, dropout=config.dropout)
        self.linear1 = nn.Linear(config.dim_model, config.dim_feedforward)
        self.dropout = nn.Dropout(config.dropout)
        self.linear2 = nn.Linear(config.dim_feedforward, config.dim_model)
        self.norm1 = nn.LayerNorm(config.dim_model)
        self.norm2 = nn.LayerNorm(config.dim_model)
        self.norm3 = nn.LayerNorm(config.dim_model)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.dropout3 = nn.Dropout(config.dropout)
        self.activation = get_activation_fn(config.feedforward_activation)
        self.pre_norm = config.pre_norm

    @staticmethod
    def maybe_add_pos_embed(tensor: Tensor, pos_embed: Tensor | None) -> Tensor:
        return tensor if pos_embed is None else tensor + pos_embed

    def forward(self, x: Tensor, encoder_out: Tensor, decoder_pos_embed: Tensor | None = None,
                encoder_pos_embed: Tensor | None = None) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = self.maybe_add_pos_embed(x, decoder_pos_embed)
        x = self.self_attn(q, k, value=x)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip = x
            x = self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = self.multihead_attn(
            query=self.maybe_add_pos_embed(x, decoder_pos_embed),
            key=self.maybe_add_pos_embed(encoder_out, encoder_pos_embed),
            value=encoder_out,
        )[0]
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip = x
            x = self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout3(x)
        if not self.pre_norm:
            x = self.norm3(x)
        return x


def create_sinusoidal_pos_embedding(num_positions: int, dimension: int) -> Tensor:
    """1D sinusoidal positional embeddings (num_positions, dimension), computed in float64 then cast."""
    exponent = 2 * (np.arange(dimension) // 2) / dimension
    table = np.arange(num_positions)[:, None] / np.power(10000, exponent)[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.from_numpy(table).float()


class ACTSinusoidalPositionEmbedding2d(nn.Module):
    """2D sine position embedding with positions normalised to (0, 2π] as in DETR/LeRobot."""

    def __init__(self, dimension: int):
        super().__init__()
        self.dimension = dimension
        self._two_pi = 2 * math.pi
        self._eps = 1e-6
        self._temperature = 10000

    def forward(self, x: Tensor) -> Tensor:
        not_mask = torch.ones_like(x[0, :1])  # (1, H, W)
        y_range = not_mask.cumsum(1, dtype=torch.float32)
        x_range = not_mask.cumsum(2, dtype=torch.float32)
        y_range = y_range / (y_range[:, -1:, :] + self._eps) * self._two_pi
        x_range = x_range / (x_range[:, :, -1:] + self._eps) * self._two_pi
        inverse_frequency = self._temperature ** (
            2 * (torch.arange(self.dimension, dtype=torch.float32, device=x.device) // 2) / self.dimension
        )
        x_range = x_range.unsqueeze(-1) / inverse_frequency
        y_range = y_range.unsqueeze(-1) / inverse_frequency
        pos_embed_x = torch.stack((x_range[..., 0::2].sin(), x_range[..., 1::2].cos()), dim=-1).flatten(3)
        pos_embed_y = torch.stack((y_range[..., 0::2].sin(), y_range[..., 1::2].cos()), dim=-1).flatten(3)
        return torch.cat((pos_embed_y, pos_embed_x), dim=3).permute(0, 3, 1, 2)


def get_activation_fn(activation: str) -> Callable[[Tensor], Tensor]:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if activation == "glu":
        return F.glu
    raise CheckpointError(f"feedforward_activation should be relu/gelu/glu, not {activation!r}")
