"""Bad runtime options and inconsistent checkpoints fail early with an error naming the problem."""

from __future__ import annotations

import json
import shutil

import pytest

import edge
from edge.errors import PackageError
from export.checkpoint import CheckpointError, load_checkpoint
from export.families.vqbet import build_policy
from export.models.vqbet import VQBeTConfig
from tests.vqbet.conftest import IMAGE, SEQUENTIAL_CONFIG


@pytest.mark.parametrize("options, message", [
    ({"greedy": "yes"}, "greedy must be True or False"),
    ({"temperature": 0.0}, "temperature must be a finite number > 0"),
    ({"temperature": -1.0}, "temperature must be a finite number > 0"),
    ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
    ({"temperature": "0.1"}, "temperature must be a finite number > 0"),
    ({"greedy": True, "temperature": 0.5}, "temperature has no effect with greedy=True"),
    ({"seed": -3}, "seed must be a non-negative int"),
    ({"seed": 1.5}, "seed must be a non-negative int"),
])
def test_bad_options(vqbet_package, options, message):
    with pytest.raises(ValueError, match=message):
        edge.load_policy(vqbet_package, **options)


def test_unknown_option(vqbet_package):
    with pytest.raises(edge.OptionError, match="num_inference_steps"):
        edge.load_policy(vqbet_package, num_inference_steps=10)


def test_manifest_without_vqbet_section(vqbet_package, tmp_path):
    copy = tmp_path / "package"
    shutil.copytree(vqbet_package, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["policy"]["codebook_size"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="codebook_size"):
        edge.load_policy(copy)


def test_checkpoint_config_must_match_weights(lerobot_fixtures):
    ckpt = load_checkpoint(lerobot_fixtures / "vqbet_cam" / "pretrained_model")
    ckpt.config = {**ckpt.config, "sequentially_select": True}
    with pytest.raises(CheckpointError, match="map_to_cbet_preds_bin"):
        build_policy(ckpt)


@pytest.mark.parametrize("change, message", [
    ({"vision_backbone": "efficientnet_b0"}, "ResNet variant"),
    ({"crop_shape": [64, 41]}, "does not fit"),
    ({"pretrained_backbone_weights": "ResNet18_Weights.IMAGENET1K_V1"}, "use_group_norm with pretrained"),
    ({"input_features": {**SEQUENTIAL_CONFIG["input_features"], "observation.images.side":
                         SEQUENTIAL_CONFIG["input_features"][IMAGE]}}, "exactly one camera"),
])
def test_bad_configs(change, message):
    with pytest.raises(CheckpointError, match=message):
        VQBeTConfig.from_dict({**SEQUENTIAL_CONFIG, **change})


def test_missing_config_field():
    config = dict(SEQUENTIAL_CONFIG)
    del config["gpt_n_head"]
    with pytest.raises(CheckpointError, match="gpt_n_head"):
        VQBeTConfig.from_dict(config)
