"""VQ-BeT fixtures: the exported LeRobot fixture, and a small random `sequentially_select` checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

STATE, IMAGE = "observation.state", "observation.images.front"

SEQUENTIAL_CONFIG = {
    "type": "vqbet",
    "n_obs_steps": 3,
    "input_features": {STATE: {"type": "STATE", "shape": [4]}, IMAGE: {"type": "VISUAL", "shape": [3, 40, 48]}},
    "output_features": {"action": {"type": "ACTION", "shape": [3]}},
    "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MIN_MAX", "ACTION": "MIN_MAX"},
    "n_action_pred_token": 2,
    "action_chunk_size": 4,
    "vision_backbone": "resnet18",
    "crop_shape": [33, 41],
    "crop_is_random": True,
    "pretrained_backbone_weights": None,
    "use_group_norm": True,
    "spatial_softmax_num_keypoints": 8,
    "n_vqvae_training_steps": 10,
    "vqvae_n_embed": 8,
    "vqvae_embedding_dim": 16,
    "vqvae_enc_hidden_dim": 24,
    "gpt_block_size": 50,
    "gpt_input_dim": 32,
    "gpt_output_dim": 24,
    "gpt_n_layer": 1,
    "gpt_n_head": 2,
    "gpt_hidden_dim": 32,
    "dropout": 0.1,
    "bet_softmax_temperature": 0.5,
    "sequentially_select": True,
}


def _write_processor(root: Path, name: str, registry: str, stats: dict[str, np.ndarray]) -> None:
    """A LeRobot processor pipeline file with one (un)normaliser step and its statistics."""
    from safetensors.numpy import save_file

    state_file = f"{name}_step_0_{registry}.safetensors"
    save_file(stats, str(root / state_file))
    step = {"registry_name": registry, "config": {"eps": 1e-8}, "state_file": state_file}
    (root / f"{name}.json").write_text(json.dumps({"name": name, "steps": [step]}))


def write_random_checkpoint(root: Path, config: dict, seed: int = 0) -> Path:
    """Save a randomly initialised export/models/vqbet.py policy as a LeRobot pretrained_model directory."""
    import torch
    from safetensors.torch import save_file

    from export.models.vqbet import VQBeTConfig, VQBeTPolicy

    torch.manual_seed(seed)
    policy = VQBeTPolicy(VQBeTConfig.from_dict(config))
    head = policy.vqbet.action_head
    n, dim = config["n_obs_steps"], config["gpt_output_dim"]
    with torch.no_grad():
        for layer in head.vqvae_model.vq_layer.layers:  # EMA codebooks start at zero
            layer._codebook.embed.normal_()
        # Random heads pick the same code whatever the input: centre and sharpen them on sample features
        # so that observations, not biases, choose the codes.
        images = torch.rand(32 * n, *config["input_features"][IMAGE]["shape"])
        x = policy.vqbet.query_features(torch.rand(32, n, config["input_features"][STATE]["shape"][0]) * 2 - 1,
                                        policy.vqbet.rgb_encoder(images).unflatten(0, (32, n)))[:, n - 1]
        for mlp in (head.map_to_cbet_preds_primary_bin, head.map_to_cbet_preds_secondary_bin):
            weight = mlp[0].weight
            weight[:, :dim] = torch.randn_like(weight[:, :dim]) * 3 / x.std(0) / dim**0.5
            weight[:, dim:] *= 10  # the secondary head's one-hot primary code
            mlp[0].bias.copy_(-weight[:, :dim] @ x.mean(0))
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(root / "model.safetensors"))
    rng = np.random.default_rng(seed)
    stats = {}
    for name, ft in [(STATE, config["input_features"][STATE]), ("action", config["output_features"]["action"])]:
        lo = rng.uniform(-2, 0, ft["shape"]).astype(np.float32)
        stats |= {f"{name}.min": lo, f"{name}.max": lo + rng.uniform(0.5, 3, ft["shape"]).astype(np.float32)}
    _write_processor(root, "policy_preprocessor", "normalizer_processor", stats)
    _write_processor(root, "policy_postprocessor", "unnormalizer_processor",
                     {k: v for k, v in stats.items() if k.startswith("action.")})
    return root


@pytest.fixture(scope="session")
def vqbet_package(export_fixture) -> Path:
    """LeRobot's vqbet_cam fixture exported once per session."""
    return export_fixture("vqbet_cam")


@pytest.fixture(scope="session")
def sequential_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("vqbet_seq") / "pretrained_model", SEQUENTIAL_CONFIG)


@pytest.fixture(scope="session")
def sequential_package(sequential_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    out = tmp_path_factory.mktemp("vqbet_seq_pkg") / "package"
    export_package(sequential_checkpoint, out, ExportOptions(samples=2), progress=lambda _msg: None)
    return out
