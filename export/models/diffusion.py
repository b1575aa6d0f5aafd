"""LeRobot's Diffusion Policy (observation encoder + conditional 1-D U-Net) with identical state_dict keys.

Follows lerobot/policies/diffusion/modeling_diffusion.py (0.4.x) class for class so a diff reads easily;
torchvision is replaced by export/models/{resnet,common}.py and einops by plain tensor ops. Sampling
(the diffusers scheduler loop) is not here: the runtime owns it (edge/runtime/schedulers.py), and the exporter
unrolls it for fused graphs. `DiffusionPolicy.diffusion` is what the `diffusion.*` keys load into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from export.config_fields import typed_config
from export.errors import CheckpointError
from export.models.common import CenterCrop, SpatialSoftmax, feature_map_shape, resnet_trunk

OBS_STATE = "observation.state"
OBS_ENV_STATE = "observation.environment_state"
OBS_IMAGES = "observation.images"
ACTION = "action"


@dataclass
class DiffusionConfig:
    """The fields of LeRobot's DiffusionConfig the model and its sampler need; all read from config.json."""

    input_features: dict[str, dict]
    output_features: dict[str, dict]
    n_obs_steps: int
    horizon: int
    n_action_steps: int
    vision_backbone: str
    crop_shape: list[int] | None
    use_group_norm: bool
    spatial_softmax_num_keypoints: int
    use_separate_rgb_encoder_per_camera: bool
    down_dims: list[int]
    kernel_size: int
    n_groups: int
    diffusion_step_embed_dim: int
    use_film_scale_modulation: bool
    noise_scheduler_type: str
    num_train_timesteps: int
    beta_schedule: str
    beta_start: float
    beta_end: float
    prediction_type: str
    clip_sample: bool
    clip_sample_range: float
    num_inference_steps: int | None
    resize_shape: list[int] | None = None  # added in LeRobot 0.4; absent means no resize
    crop_ratio: float = 1.0
    pretrained_backbone_weights: str | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "DiffusionConfig":
        cfg = typed_config(cls, config, "Diffusion")
        cfg._post_init()
        return cfg

    def _post_init(self) -> None:
        """LeRobot's __post_init__: crop shape derived from resize_shape and crop_ratio, and its checks."""
        if not self.vision_backbone.startswith("resnet"):
            raise CheckpointError(f"vision_backbone must be a ResNet variant, got {self.vision_backbone!r}")
        if self.prediction_type not in ("epsilon", "sample"):
            raise CheckpointError(f"prediction_type must be 'epsilon' or 'sample', got {self.prediction_type!r}")
        if self.noise_scheduler_type not in ("DDPM", "DDIM"):
            raise CheckpointError(f"noise_scheduler_type must be 'DDPM' or 'DDIM', got {self.noise_scheduler_type!r}")
        if self.resize_shape is not None:
            if len(self.resize_shape) != 2 or any(d <= 0 for d in self.resize_shape):
                raise CheckpointError(f"resize_shape must be a pair of positive integers, got {self.resize_shape}")
            self.crop_shape = ([int(self.resize_shape[0] * self.crop_ratio), int(self.resize_shape[1] * self.crop_ratio)]
                               if self.crop_ratio < 1.0 else None)
        if self.horizon % 2 ** len(self.down_dims):
            raise CheckpointError(f"horizon {self.horizon} is not a multiple of the U-Net downsampling factor "
                             f"2**{len(self.down_dims)}")
        if self.use_group_norm and self.pretrained_backbone_weights:
            raise CheckpointError("use_group_norm with pretrained_backbone_weights: LeRobot refuses this combination")
        if not self.image_features and self.env_state_feature is None:
            raise CheckpointError("Diffusion Policy needs at least one image or the environment state among its inputs")
        shapes = {tuple(ft["shape"]) for ft in self.image_features.values()}
        if len(shapes) > 1:
            raise CheckpointError(f"all camera images must have the same shape, got {sorted(shapes)}")
        if self.resize_shape is None and self.crop_shape is not None and shapes:
            (_, h, w), = shapes
            if self.crop_shape[0] > h or self.crop_shape[1] > w:
                raise CheckpointError(f"crop_shape {self.crop_shape} does not fit in the {h}x{w} images")

    @property
    def robot_state_feature(self) -> dict:
        return self.input_features[OBS_STATE]

    @property
    def env_state_feature(self) -> dict | None:
        return self.input_features.get(OBS_ENV_STATE)

    @property
    def image_features(self) -> dict[str, dict]:
        return {k: ft for k, ft in self.input_features.items() if ft["type"] == "VISUAL"}

    @property
    def action_dim(self) -> int:
        return self.output_features[ACTION]["shape"][0]


class DiffusionPolicy(nn.Module):
    """Holds `diffusion` so checkpoint keys (`diffusion.*`) load unchanged."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        self.diffusion = DiffusionModel(config)


class DiffusionModel(nn.Module):
    """Observation encoders and the U-Net; `global_conditioning` and `unet` are the two exported halves."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        self.config = config
        global_cond_dim = config.robot_state_feature["shape"][0]
        if config.image_features:
            num_images = len(config.image_features)
            if config.use_separate_rgb_encoder_per_camera:
                encoders = [DiffusionRgbEncoder(config) for _ in range(num_images)]
                self.rgb_encoder = nn.ModuleList(encoders)
                global_cond_dim += encoders[0].feature_dim * num_images
            else:
                self.rgb_encoder = DiffusionRgbEncoder(config)
                global_cond_dim += self.rgb_encoder.feature_dim * num_images
        if config.env_state_feature:
            global_cond_dim += config.env_state_feature["shape"][0]
        self.global_cond_dim = global_cond_dim * config.n_obs_steps
        self.unet = DiffusionConditionalUnet1d(config, global_cond_dim=self.global_cond_dim)

    def _prepare_global_conditioning(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, global_cond_dim): per step [state, image features (camera-major), env state], steps flattened.

        `batch[OBS_IMAGES]` is (B, S, N, C, H, W) as LeRobot stacks the cameras.
        """
        batch_size, n_obs_steps = batch[OBS_STATE].shape[:2]
        global_cond_feats = [batch[OBS_STATE]]
        if self.config.image_features:
            images = batch[OBS_IMAGES]
            if self.config.use_separate_rgb_encoder_per_camera:
                # "b s n ... -> n (b s) ...", one encoder per camera, then "(n b s) d -> b s (n d)".
                per_camera = images.permute(2, 0, 1, 3, 4, 5).flatten(1, 2)
                feats = torch.stack([enc(imgs) for enc, imgs in zip(self.rgb_encoder, per_camera)])
                img_features = feats.reshape(-1, batch_size, n_obs_steps, feats.shape[-1]).permute(1, 2, 0, 3)
            else:
                # "b s n ... -> (b s n) ...", one shared encoder, then "(b s n) d -> b s (n d)".
                feats = self.rgb_encoder(images.flatten(0, 2))
                img_features = feats.reshape(batch_size, n_obs_steps, -1, feats.shape[-1])
            global_cond_feats.append(img_features.flatten(2))
        if self.config.env_state_feature:
            global_cond_feats.append(batch[OBS_ENV_STATE])
        return torch.cat(global_cond_feats, dim=-1).flatten(start_dim=1)


def _aa_bilinear_weights(in_size: int, out_size: int) -> Tensor:
    """(out, in) matrix of PyTorch's antialiased bilinear resize along one axis (align_corners=False).

    Same taps as aten's `_upsample_bilinear2d_aa`: a triangle filter stretched by the scale when downsampling,
    centred at scale * (i + 0.5), weights normalised per output pixel.
    """
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        taps = torch.tensor([max(0.0, 1.0 - abs((j - center + 0.5) * invscale)) for j in range(lo, hi)],
                            dtype=torch.float64)
        weights[i, lo:hi] = taps / taps.sum()
    return weights.float()


class Resize(nn.Module):
    """torchvision.transforms.Resize((h, w)) on float tensors (bilinear, antialias=True) as two matrix products.

    F.interpolate(antialias=True) has no ONNX export at opset <= 20, so the separable filter is applied as
    fixed (non-persistent) weight matrices: rows = Wh @ x, then columns @ Ww^T.
    """

    def __init__(self, size: list[int], input_hw: tuple[int, int]):
        super().__init__()
        if len(size) != 2:
            raise CheckpointError(f"only an explicit (height, width) resize is supported, got {size}")
        self.size = (int(size[0]), int(size[1]))
        self.register_buffer("weight_h", _aa_bilinear_weights(input_hw[0], self.size[0]), persistent=False)
        self.register_buffer("weight_w", _aa_bilinear_weights(input_hw[1], self.size[1]).t().contiguous(),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(torch.matmul(self.weight_h, x), self.weight_w)


class DiffusionRgbEncoder(nn.Module):
    """ResNet trunk → SpatialSoftmax keypoints → linear + ReLU; optional resize and centre crop first (eval)."""

    def __init__(self, config: DiffusionConfig):
        super().__init__()
        images_shape = next(iter(config.image_features.values()))["shape"]
        self.resize = Resize(config.resize_shape, images_shape[1:]) if config.resize_shape is not None else None
        self.do_crop = config.crop_shape is not None
        if self.do_crop:
            self.center_crop = CenterCrop(config.crop_shape)
        self.backbone = resnet_trunk(config.vision_backbone, config.use_group_norm)
        if not config.use_group_norm:
            self.backbone.eval()  # BatchNorm2d kept, running statistics used
        if config.crop_shape is not None:
            dummy_h_w = tuple(config.crop_shape)
        elif config.resize_shape is not None:
            dummy_h_w = tuple(config.resize_shape)
        else:
            dummy_h_w = tuple(images_shape[1:])
        self.pool = SpatialSoftmax(feature_map_shape(self.backbone, (images_shape[0], *dummy_h_w)),
                                   num_kp=config.spatial_softmax_num_keypoints)
        self.feature_dim = config.spatial_softmax_num_keypoints * 2
        self.out = nn.Linear(config.spatial_softmax_num_keypoints * 2, self.feature_dim)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) normalised images → (B, feature_dim)."""
        if self.resize is not None:
            x = self.resize(x)
        if self.do_crop:
            x = self.center_crop(x)
        x = torch.flatten(self.pool(self.backbone(x)), start_dim=1)
        return self.relu(self.out(x))


class DiffusionSinusoidalPosEmb(nn.Module):
    """1-D sinusoidal embedding of the diffusion timestep, computed in float32 whatever the input dtype."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        half_dim = self.dim // 2
        emb = math.log(10000) / (half_dim - 1)
        emb = torch.exp(torch.arange(half_dim, dtype=torch.float32, device=x.device) * -emb)
        emb = x.to(torch.float32).unsqueeze(-1) * emb.unsqueeze(0)
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class DiffusionConv1dBlock(nn.Module):
    """Conv1d --> GroupNorm --> Mish"""

    def __init__(self, inp_channels: int, out_channels: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(inp_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_channels),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class DiffusionConditionalUnet1d(nn.Module):
    """A 1-D convolutional U-Net with FiLM conditioning on [timestep embedding, global_cond]."""

    def __init__(self, config: DiffusionConfig, global_cond_dim: int):
        super().__init__()
        self.config = config
        self.diffusion_step_encoder = nn.Sequential(
            DiffusionSinusoidalPosEmb(config.diffusion_step_embed_dim),
            nn.Linear(config.diffusion_step_embed_dim, config.diffusion_step_embed_dim * 4),
            nn.Mish(),
            nn.Linear(config.diffusion_step_embed_dim * 4, config.diffusion_step_embed_dim),
        )
        cond_dim = config.diffusion_step_embed_dim + global_cond_dim
        in_out = [(config.action_dim, config.down_dims[0])] + list(zip(config.down_dims[:-1], config.down_dims[1:]))
        common_res_block_kwargs = {
            "cond_dim": cond_dim,
            "kernel_size": config.kernel_size,
            "n_groups": config.n_groups,
            "use_film_scale_modulation": config.use_film_scale_modulation,
        }
        self.down_modules = nn.ModuleList([])
        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind >= (len(in_out) - 1)
            self.down_modules.append(nn.ModuleList([
                DiffusionConditionalResidualBlock1d(dim_in, dim_out, **common_res_block_kwargs),
                DiffusionConditionalResidualBlock1d(dim_out, dim_out, **common_res_block_kwargs),
                nn.Conv1d(dim_out, dim_out, 3, 2, 1) if not is_last else nn.Identity(),
            ]))
        self.mid_modules = nn.ModuleList([
            DiffusionConditionalResidualBlock1d(config.down_dims[-1], config.down_dims[-1], **common_res_block_kwargs),
            DiffusionConditionalResidualBlock1d(config.down_dims[-1], config.down_dims[-1], **common_res_block_kwargs),
        ])
        self.up_modules = nn.ModuleList([])
        for ind, (dim_out, dim_in) in enumerate(reversed(in_out[1:])):
            is_last = ind >= (len(in_out) - 1)
            self.up_modules.append(nn.ModuleList([
                DiffusionConditionalResidualBlock1d(dim_in * 2, dim_out, **common_res_block_kwargs),
                DiffusionConditionalResidualBlock1d(dim_out, dim_out, **common_res_block_kwargs),
                nn.ConvTranspose1d(dim_out, dim_out, 4, 2, 1) if not is_last else nn.Identity(),
            ]))
        self.final_conv = nn.Sequential(
            DiffusionConv1dBlock(config.down_dims[0], config.down_dims[0], kernel_size=config.kernel_size),
            nn.Conv1d(config.down_dims[0], config.action_dim, 1),
        )

    def forward(self, x: Tensor, timestep: Tensor, global_cond: Tensor | None = None) -> Tensor:
        """(B, T, action_dim) noisy chunk, (B,) timestep, (B, global_cond_dim) → (B, T, action_dim)."""
        x = x.transpose(1, 2)  # "b t d -> b d t"
        timesteps_embed = self.diffusion_step_encoder(timestep)
        global_feature = timesteps_embed if global_cond is None else torch.cat([timesteps_embed, global_cond], -1)
        encoder_skip_features: list[Tensor] = []
        for resnet, resnet2, downsample in self.down_modules:
            x = resnet2(resnet(x, global_feature), global_feature)
            encoder_skip_features.append(x)
            x = downsample(x)
        for mid_module in self.mid_modules:
            x = mid_module(x, global_feature)
        for resnet, resnet2, upsample in self.up_modules:
            x = torch.cat((x, encoder_skip_features.pop()), dim=1)
            x = resnet2(resnet(x, global_feature), global_feature)
            x = upsample(x)
        return self.final_conv(x).transpose(1, 2)  # "b d t -> b t d"


class DiffusionConditionalResidualBlock1d(nn.Module):
    """ResNet-style 1-D conv block with FiLM modulation (bias, and scale when use_film_scale_modulation)."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int = 3, n_groups: int = 8,
                 use_film_scale_modulation: bool = False):
        super().__init__()
        self.use_film_scale_modulation = use_film_scale_modulation
        self.out_channels = out_channels
        self.conv1 = DiffusionConv1dBlock(in_channels, out_channels, kernel_size, n_groups=n_groups)
        cond_channels = out_channels * 2 if use_film_scale_modulation else out_channels
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, cond_channels))
        self.conv2 = DiffusionConv1dBlock(out_channels, out_channels, kernel_size, n_groups=n_groups)
        self.residual_conv = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = self.conv1(x)
        cond_embed = self.cond_encoder(cond).unsqueeze(-1)
        if self.use_film_scale_modulation:
            out = cond_embed[:, : self.out_channels] * out + cond_embed[:, self.out_channels :]
        else:
            out = out + cond_embed
        out = self.conv2(out)
        return out + self.residual_conv(x)
