"""Corrupted checkpoints, corrupted packages and bad observations fail with errors that name the problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import edge
from edge.errors import ObservationError, PackageError
from export.checkpoint import CheckpointError
from export.cli import main as export_main
from export.pipeline import export_package


@pytest.fixture
def checkpoint_copy(lerobot_fixtures, tmp_path) -> Path:
    dst = tmp_path / "pretrained_model"
    shutil.copytree(lerobot_fixtures / "act_env" / "pretrained_model", dst)
    return dst


def edit_weights(ckpt: Path, edit) -> None:  # noqa: ANN001
    weights = load_file(str(ckpt / "model.safetensors"))
    edit(weights)
    save_file(weights, str(ckpt / "model.safetensors"))


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.pop("model.action_head.bias"), "model.action_head.bias"),
    (lambda w: w.update({"model.extra_head.weight": np.zeros(3, np.float32)}), "model.extra_head.weight"),
    (lambda w: w.update({"model.action_head.weight": np.zeros((7, 64), np.float32)}), "model.action_head.weight"),
])
def test_corrupted_checkpoint_is_refused_and_nothing_written(checkpoint_copy, tmp_path, edit, message):
    edit_weights(checkpoint_copy, edit)
    out = tmp_path / "pkg"
    with pytest.raises(CheckpointError, match=message.replace(".", r"\.")):
        export_package(checkpoint_copy, out, progress=lambda _m: None)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pretrained_model"]  # no temporary leftovers


def test_missing_statistics_named(checkpoint_copy, tmp_path):
    (checkpoint_copy / "policy_preprocessor.json").unlink()
    (checkpoint_copy / "policy_postprocessor.json").unlink()
    with pytest.raises(CheckpointError, match="observation.state"):
        export_package(checkpoint_copy, tmp_path / "pkg", progress=lambda _m: None)


def test_old_layout_with_buffers_in_model_safetensors(checkpoint_copy, tmp_path, export_fixture, reference_rollout):
    """Pre-processor-era checkpoints kept the stats as normalize_*/unnormalize_* buffers in the weights."""
    stats = load_file(str(checkpoint_copy / "policy_preprocessor_step_3_normalizer_processor.safetensors"))

    def add_buffers(w):  # noqa: ANN001
        for key, value in stats.items():
            feature, stat = key.rsplit(".", 1)
            prefix = "unnormalize_outputs" if feature == "action" else "normalize_inputs"
            w[f"{prefix}.buffer_{feature.replace('.', '_')}.{stat}"] = value

    edit_weights(checkpoint_copy, add_buffers)
    for f in checkpoint_copy.glob("policy_*"):
        f.unlink()
    export_package(checkpoint_copy, tmp_path / "pkg", progress=lambda _m: None)
    ref = reference_rollout("act_env")
    policy = edge.load_policy(tmp_path / "pkg")
    action = policy.select_action({n: ref[f"obs.0.{n}"] for n in policy.input_names})
    np.testing.assert_allclose(action, ref["action.0"], atol=1e-4)


def test_cli_refuses_to_overwrite_without_force(lerobot_fixtures, tmp_path, capsys):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert export_main([str(lerobot_fixtures / "act_env" / "pretrained_model"), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert export_main([str(lerobot_fixtures / "act_env" / "pretrained_model"), "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "manifest.json").is_file()


@pytest.fixture
def package_copy(export_fixture, tmp_path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(export_fixture("act_env"), dst)
    return dst


def edit_manifest(pkg: Path, edit) -> None:  # noqa: ANN001
    data = json.loads((pkg / "manifest.json").read_text())
    edit(data)
    (pkg / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(version=99), "unknown manifest version 99"),
    (lambda m: m.pop("chunking"), "missing key.*chunking"),
    (lambda m: m["graphs"]["act"]["inputs"][0].update(shape=[1, 7]), "observation.state.*shape"),
    (lambda m: m["inputs"][0]["normalization"].update(mode="WHATEVER"), "unknown normalisation mode"),
    (lambda m: m["graphs"]["act"].update(file="gone.onnx"), "gone.onnx is missing"),
])
def test_edited_manifest_is_refused(package_copy, edit, message):
    edit_manifest(package_copy, edit)
    with pytest.raises(PackageError, match=message):
        edge.load_policy(package_copy)


def test_truncated_onnx_is_refused(package_copy):
    onnx_file = package_copy / "act.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    with pytest.raises(PackageError, match="act.onnx does not match"):
        edge.load_policy(package_copy)


@pytest.fixture(scope="module")
def policy_and_obs(export_fixture, reference_rollout):
    ref = reference_rollout("act_cam")
    policy = edge.load_policy(export_fixture("act_cam"))
    return policy, {n: ref[f"obs.0.{n}"] for n in policy.input_names}


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.pop("observation.state"), r"missing key\(s\) \['observation.state'\]"),
    (lambda o: o.update({"observation.state": np.zeros(5, np.float32)}), r"observation.state: expected shape \(6,\)"),
    (lambda o: o.update({"observation.state": np.array([0, 0, np.nan, 0, 0, 0], np.float32)}), r"non-finite.*\[2\]"),
    (lambda o: o.update({"observation.images.top": np.zeros((96, 128, 3), np.float32)}), "images must be uint8"),
    (lambda o: o.update({"observation.images.top": np.zeros((3, 96, 128), np.uint8)}), r"expected shape \(96, 128, 3\)"),
    (lambda o: o.update({"observation.state": [0.0] * 6}), "expected a numpy array"),
])
def test_bad_observation_is_named(policy_and_obs, mutate, message):
    policy, obs = policy_and_obs
    obs = dict(obs)
    mutate(obs)
    policy.reset()
    with pytest.raises(ObservationError, match=message):
        policy.select_action(obs)
