"""Vision pieces LeRobot's Diffusion Policy and VQ-BeT share: ResNet trunk, centre crop, SpatialSoftmax.

Both families' RGB encoders are `nn.Sequential(*resnet.children()[:-2])` (optionally with GroupNorm in
place of BatchNorm), a centre crop at eval, and SpatialSoftmax keypoints; the pieces live here once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from export.errors import CheckpointError
from export.models.resnet import ResNet


def resnet_trunk(name: str, use_group_norm: bool) -> nn.Sequential:
    """torchvision ResNet without avgpool/fc, as LeRobot slices it (keys `0`..`7`).

    With `use_group_norm`, every BatchNorm2d is GroupNorm(num_features // 16, num_features) as LeRobot's
    `_replace_submodules` leaves it.
    """
    norm_layer = (lambda c: nn.GroupNorm(c // 16, c)) if use_group_norm else nn.BatchNorm2d
    return nn.Sequential(*list(ResNet(name, norm_layer=norm_layer).children())[:-2])


def feature_map_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape (without batch) of `module` on a dummy (1, *input_shape) input, as LeRobot's dry run."""
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *input_shape)).shape[1:])


class CenterCrop(nn.Module):
    """torchvision.transforms.CenterCrop for (..., H, W) tensors no smaller than the crop (offsets rounded alike)."""

    def __init__(self, size: tuple[int, int] | list[int]):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, x: Tensor) -> Tensor:
        (h, w), (th, tw) = (int(x.shape[-2]), int(x.shape[-1])), self.size  # plain ints, also when traced
        if th > h or tw > w:
            raise CheckpointError(f"crop {self.size} is larger than the image {(h, w)}")
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return x[..., top : top + th, left : left + tw]


class SpatialSoftmax(nn.Module):
    """Keypoints as the softmax-weighted mean of a normalised (x, y) grid per channel (Finn et al.).

    `nets` (1x1 conv to `num_kp` channels) and the `pos_grid` buffer keep LeRobot's names; the grid is
    built with numpy linspace as LeRobot does (torch.linspace differs in the last bits).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_kp: int | None = None):
        super().__init__()
        self._in_c, self._in_h, self._in_w = input_shape
        self.nets = nn.Conv2d(self._in_c, num_kp, kernel_size=1) if num_kp is not None else None
        self._out_c = num_kp if num_kp is not None else self._in_c
        pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, self._in_w), np.linspace(-1.0, 1.0, self._in_h))
        pos_x = torch.from_numpy(pos_x.reshape(self._in_h * self._in_w, 1)).float()
        pos_y = torch.from_numpy(pos_y.reshape(self._in_h * self._in_w, 1)).float()
        self.register_buffer("pos_grid", torch.cat([pos_x, pos_y], dim=1))

    def forward(self, features: Tensor) -> Tensor:
        """(B, C, H, W) feature maps → (B, K, 2) keypoints in [-1, 1] image coordinates."""
        if self.nets is not None:
            features = self.nets(features)
        attention = F.softmax(features.reshape(-1, self._in_h * self._in_w), dim=-1)
        return (attention @ self.pos_grid).view(-1, self._out_c, 2)
