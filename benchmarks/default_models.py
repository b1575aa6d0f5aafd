"""LeRobot's default policy configurations on its example datasets, as random-weight LeRobot checkpoints.

The defaults are those of LeRobot 0.4.4 (huggingface/lerobot tag v0.4.4,
src/lerobot/policies/act/configuration_act.py, diffusion/configuration_diffusion.py, vqbet/configuration_vqbet.py:
the version the shared LeRobot fixtures come from), plus Diffusion with LeRobot 0.6's newer defaults (tag v0.6.1,
diffusion/configuration_diffusion.py: horizon 64, n_action_steps 32, BatchNorm backbone, one encoder per camera).
Inputs are those of LeRobot's example datasets: aloha sim (lerobot/aloha_sim_*: a 480x640 top camera and a 14-D
state, 14-D action) for ACT; pusht (lerobot/pusht: a 96x96 image and a 2-D state, 2-D action) for Diffusion and
VQ-BeT. Diffusion samples as the runtime runs it: the DDPM-100 training schedule with DDIM at 10 steps.
`pretrained_backbone_weights` is None: the weights are random and nothing is downloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from export.checkpoint import load_checkpoint
from export.lerobot_format import save_pretrained

ROOT = Path(__file__).resolve().parents[1]
WORKDIR = ROOT / "build" / "bench_defaults"  # checkpoints and packages: generated, git-ignored

ALOHA = {"input_features": {"observation.images.top": {"type": "VISUAL", "shape": [3, 480, 640]},
                            "observation.state": {"type": "STATE", "shape": [14]}},
         "output_features": {"action": {"type": "ACTION", "shape": [14]}}}
PUSHT = {"input_features": {"observation.image": {"type": "VISUAL", "shape": [3, 96, 96]},
                            "observation.state": {"type": "STATE", "shape": [2]}},
         "output_features": {"action": {"type": "ACTION", "shape": [2]}}}

ACT_0_4 = {  # configuration_act.py, v0.4.4
    "type": "act", "n_obs_steps": 1, "chunk_size": 100, "n_action_steps": 100,
    "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
    "vision_backbone": "resnet18", "pretrained_backbone_weights": None, "replace_final_stride_with_dilation": False,
    "pre_norm": False, "dim_model": 512, "n_heads": 8, "dim_feedforward": 3200, "feedforward_activation": "relu",
    "n_encoder_layers": 4, "n_decoder_layers": 1, "use_vae": True, "latent_dim": 32, "n_vae_encoder_layers": 4,
    "temporal_ensemble_coeff": None, "dropout": 0.1, "kl_weight": 10.0,
}
DIFFUSION_0_4 = {  # configuration_diffusion.py, v0.4.4; DDIM-10 sampling of the DDPM-100 schedule
    "type": "diffusion", "n_obs_steps": 2, "horizon": 16, "n_action_steps": 8,
    "normalization_mapping": {"VISUAL": "MEAN_STD", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
    "drop_n_last_frames": 7, "vision_backbone": "resnet18", "resize_shape": None, "crop_ratio": 1.0,
    "crop_shape": None, "crop_is_random": True, "pretrained_backbone_weights": None, "use_group_norm": True,
    "spatial_softmax_num_keypoints": 32, "use_separate_rgb_encoder_per_camera": False,
    "down_dims": [512, 1024, 2048], "kernel_size": 5, "n_groups": 8, "diffusion_step_embed_dim": 128,
    "use_film_scale_modulation": True, "noise_scheduler_type": "DDIM", "num_train_timesteps": 100,
    "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon",
    "clip_sample": True, "clip_sample_range": 1.0, "num_inference_steps": 10, "do_mask_loss_for_padding": False,
}
DIFFUSION_0_6 = {**DIFFUSION_0_4,  # configuration_diffusion.py, v0.6.1 (ImageNet weights replaced by random ones)
                 "horizon": 64, "n_action_steps": 32, "use_group_norm": False,
                 "use_separate_rgb_encoder_per_camera": True}
VQBET_0_4 = {  # configuration_vqbet.py, v0.4.4
    "type": "vqbet", "n_obs_steps": 5, "n_action_pred_token": 3, "action_chunk_size": 5,
    "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
    "vision_backbone": "resnet18", "crop_shape": [84, 84], "crop_is_random": True, "pretrained_backbone_weights": None,
    "use_group_norm": True, "spatial_softmax_num_keypoints": 32, "n_vqvae_training_steps": 20000,
    "vqvae_n_embed": 16, "vqvae_embedding_dim": 256, "vqvae_enc_hidden_dim": 128, "gpt_block_size": 500,
    "gpt_input_dim": 512, "gpt_output_dim": 512, "gpt_n_layer": 8, "gpt_n_head": 8, "gpt_hidden_dim": 512,
    "dropout": 0.1, "bet_softmax_temperature": 0.1, "sequentially_select": False,
}


@dataclass
class DefaultModel:
    """One benchmark case: a LeRobot config on a dataset's features."""

    name: str
    title: str
    config: dict[str, Any]

    @property
    def family(self) -> str:
        return self.config["type"]


ARM = {"input_features": {"observation.state": {"type": "STATE", "shape": [6]}},  # the emulated 6-servo arm
       "output_features": {"action": {"type": "ACTION", "shape": [6]}}}


def on_the_arm(config: dict[str, Any], camera: str, height: int, width: int) -> dict[str, Any]:
    """A default configuration re-targeted to the emulated arm: its 6 joints, plus one camera of the dataset's size."""
    features = {camera: {"type": "VISUAL", "shape": [3, height, width]}, **ARM["input_features"]}
    return {**config, "input_features": features, "output_features": ARM["output_features"]}


MODELS = {m.name: m for m in (
    DefaultModel("act", "ACT, LeRobot 0.4.4 defaults, aloha sim (480x640 top camera, 14-D state)",
                 {**ACT_0_4, **ALOHA}),
    DefaultModel("diffusion", "Diffusion, LeRobot 0.4.4 defaults, pusht (96x96, 2-D state), DDIM-10",
                 {**DIFFUSION_0_4, **PUSHT}),
    DefaultModel("diffusion_0.6", "Diffusion, LeRobot 0.6 defaults (horizon 64, 32 actions, BatchNorm, encoder per "
                 "camera), pusht, DDIM-10", {**DIFFUSION_0_6, **PUSHT}),
    DefaultModel("vqbet", "VQ-BeT, LeRobot 0.4.4 defaults, pusht (96x96, 2-D state)", {**VQBET_0_4, **PUSHT}),
)}
ARM_MODELS = {m.name: m for m in (  # benchmarks/bench_loop.py --real-sizes
    DefaultModel("act_arm", "ACT, LeRobot 0.4.4 defaults, 480x640 camera, on the 6-servo arm",
                 on_the_arm(ACT_0_4, "observation.images.top", 480, 640)),
    DefaultModel("diffusion_arm", "Diffusion, LeRobot 0.4.4 defaults, 96x96 camera, on the 6-servo arm",
                 on_the_arm(DIFFUSION_0_4, "observation.image", 96, 96)),
)}


def build_module(model: DefaultModel) -> torch.nn.Module:
    """The family's LeRobot-identical PyTorch policy (export/models), randomly initialised, in eval mode."""
    if model.family == "act":
        from export.models.act import ACTConfig as Config
        from export.models.act import ACTPolicy as Policy
    elif model.family == "diffusion":
        from export.models.diffusion import DiffusionConfig as Config
        from export.models.diffusion import DiffusionPolicy as Policy
    else:
        from export.models.vqbet import VQBeTConfig as Config
        from export.models.vqbet import VQBeTPolicy as Policy
    return Policy(Config.from_dict(model.config)).eval()


def statistics(model: DefaultModel, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Plausible random normalisation statistics for every feature (std > 0, max > min)."""
    stats = {}
    for name, feature in {**model.config["input_features"], **model.config["output_features"]}.items():
        shape = (feature["shape"][0], 1, 1) if feature["type"] == "VISUAL" else tuple(feature["shape"])
        mean = rng.uniform(-1, 1, shape).astype(np.float32)
        spread = rng.uniform(0.5, 2, shape).astype(np.float32)
        stats[name] = {"mean": mean, "std": spread, "min": mean - 2 * spread, "max": mean + 2 * spread}
    return stats


def write_checkpoint(model: DefaultModel, out: Path, seed: int = 0) -> Path:
    """A LeRobot-layout pretrained_model/ directory with random weights (torch's default init, seeded)."""
    torch.manual_seed(seed)
    module = build_module(model)
    return save_pretrained(out, model.config, module, statistics(model, np.random.default_rng(seed)))


def ensure_package(model: DefaultModel, log: Callable[[str], None], serve_batches: tuple[int, ...] = ()) -> Path:
    """The case's checkpoint and package under WORKDIR; re-exported when the checkpoint or the exporter changed.
    `serve_batches`: the package (its own folder, package_serve) also has those batch graphs in serve/."""
    folder = "package_serve" if serve_batches else "package"
    ckpt, package = WORKDIR / model.name / "pretrained_model", WORKDIR / model.name / folder
    if not (ckpt / "config.json").exists() or json.loads((ckpt / "config.json").read_text()) != model.config:
        log(f"{model.name}: writing a random-weight LeRobot checkpoint")
        write_checkpoint(model, ckpt)
    manifest, serve = package / "manifest.json", package / "serve" / "manifest.json"
    exporter = max(f.stat().st_mtime for f in (ROOT / "export").rglob("*.py"))
    if (not manifest.exists() or manifest.stat().st_mtime < exporter
            or json.loads(manifest.read_text())["source"]["sha256"] != load_checkpoint(ckpt).sha256
            or (serve_batches and (not serve.exists() or [b["batch"] for b in json.loads(serve.read_text())["batches"]]
                                   != sorted(serve_batches)))):
        log(f"{model.name}: edge-export" + (f" --serve-batch {','.join(map(str, serve_batches))}" if serve_batches
                                            else ""))
        extra = ["--serve-batch", ",".join(map(str, serve_batches))] if serve_batches else []
        subprocess.run([sys.executable, "-m", "export.cli", str(ckpt), "--out", str(package), "--force", *extra],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return package
