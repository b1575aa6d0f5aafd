"""Config variants the fixture does not cover: BatchNorm backbone, one encoder per camera, resize + crop ratio,
environment state, FiLM without scale, sample prediction. The weights are random (no LeRobot reference), so
this checks that every option builds, loads strictly from its own keys, exports, and runs in the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edge

torch = pytest.importorskip("torch")


def _variant_checkpoint(lerobot_fixtures: Path, out: Path) -> Path:
    from safetensors.torch import save_file

    from export.models.diffusion import DiffusionConfig, DiffusionPolicy

    config = json.loads((lerobot_fixtures / "diffusion_cam" / "pretrained_model" / "config.json").read_text())
    config.update(
        input_features={"observation.state": {"type": "STATE", "shape": [4]},
                        "observation.environment_state": {"type": "ENV", "shape": [3]},
                        "observation.images.left": {"type": "VISUAL", "shape": [3, 64, 72]},
                        "observation.images.right": {"type": "VISUAL", "shape": [3, 64, 72]}},
        output_features={"action": {"type": "ACTION", "shape": [3]}},
        normalization_mapping={"VISUAL": "IDENTITY", "STATE": "IDENTITY", "ENV": "IDENTITY", "ACTION": "IDENTITY"},
        use_group_norm=False, use_separate_rgb_encoder_per_camera=True, resize_shape=[56, 60], crop_ratio=0.9,
        use_film_scale_modulation=False, prediction_type="sample", noise_scheduler_type="DDPM",
        num_inference_steps=None, down_dims=[32, 64], horizon=8, n_action_steps=4, n_obs_steps=3,
        spatial_softmax_num_keypoints=8, diffusion_step_embed_dim=16, kernel_size=3, n_groups=4,
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(DiffusionConfig.from_dict(config))
    assert policy.config.crop_shape == [50, 54]  # LeRobot derives it from resize_shape * crop_ratio
    for name, buf in policy.named_buffers():
        if name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(out / "model.safetensors"))
    return out


def test_variant_exports_and_runs(lerobot_fixtures, tmp_path):
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    ckpt = _variant_checkpoint(lerobot_fixtures, tmp_path / "ckpt")
    pkg = tmp_path / "pkg"
    manifest = export_package(ckpt, pkg, ExportOptions(samples=1, extra={"fused_steps": 2}), progress=lambda _m: None)
    assert manifest.policy.sampler == "ddpm" and manifest.policy.num_inference_steps == 100
    assert manifest.policy.scheduler.prediction_type == "sample"
    assert max(manifest.validation.export_max_abs_error.values()) <= 1e-4

    obs = {"observation.state": np.zeros(4, np.float32), "observation.environment_state": np.ones(3, np.float32),
           "observation.images.left": np.full((64, 72, 3), 100, np.uint8),
           "observation.images.right": np.full((64, 72, 3), 200, np.uint8)}
    noise = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    fused = edge.load_policy(pkg, sampler="ddim", num_inference_steps=2)
    per_step = edge.load_policy(pkg, sampler="ddim", num_inference_steps=2, fused=False)
    assert fused.fused_graph == "denoise_2"
    np.testing.assert_allclose(fused.predict_action_chunk(obs, noise), per_step.predict_action_chunk(obs, noise),
                               rtol=0, atol=1e-5)
    ddpm = edge.load_policy(pkg, num_inference_steps=4, seed=0)
    actions = np.stack([ddpm.select_action(obs) for _ in range(5)])
    assert actions.shape == (5, 3) and np.all(np.isfinite(actions))


@pytest.mark.parametrize("in_hw,out_hw", [((96, 96), (84, 84)), ((64, 72), (56, 60)), ((48, 40), (96, 100)),
                                           ((100, 90), (31, 47))])
def test_resize_matches_torch_antialiased_bilinear(in_hw, out_hw):
    """Resize's matrices reproduce F.interpolate(bilinear, antialias=True), torchvision's tensor Resize."""
    import torch.nn.functional as F  # noqa: N812

    from export.models.diffusion import Resize

    x = torch.rand(2, 3, *in_hw, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    # aten builds the taps in float32; ours are float64 rounded once, hence a few 1e-6.
    torch.testing.assert_close(Resize(list(out_hw), in_hw)(x), expected, rtol=0, atol=1e-5)
