"""The dataset's joint names and fps: read from LeRobot's meta/info.json (list or dict names), found through the
checkpoint's train_config.json, recorded in the optional manifest section, checked at load naming `dataset.<field>`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import edge
from edge.runtime.package import load_package
from export.cli import main as export_main
from export.dataset_info import find_dataset_info, read_dataset_info
from export.errors import CheckpointError

DATA = Path(edge.__file__).parent / "data"
NAMES = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]


def info_json(path: Path, state_names, action_names=NAMES, fps=30) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    features = {"observation.state": {"dtype": "float32", "shape": [6], "names": state_names},
                "action": {"dtype": "float32", "shape": [6], "names": action_names},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None}}
    path.write_text(json.dumps({"codebase_version": "v3.0", "fps": fps, "features": features}))
    return path


def test_list_and_dict_names_are_flattened(tmp_path):
    info = read_dataset_info(info_json(tmp_path / "a" / "meta" / "info.json", NAMES))
    assert (info.fps, info.state_names, info.action_names) == (30, NAMES, NAMES)
    older = read_dataset_info(info_json(tmp_path / "b" / "meta" / "info.json", {"motors": NAMES[:3] + NAMES[3:]},
                                        {"motors": NAMES}))
    assert older.state_names == NAMES and older.action_names == NAMES
    none = read_dataset_info(info_json(tmp_path / "c" / "meta" / "info.json", None, None, fps=50))
    assert (none.fps, none.state_names, none.action_names) == (50, None, None)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(fps=0), "'fps' must be a positive whole number"),
    (lambda d: d.pop("features"), "no 'features' object"),
    (lambda d: d["features"]["action"].update(names=[1, 2]), r"features.action.names: names must be non-empty strings"),
])
def test_bad_info_json_is_refused_by_name(tmp_path, edit, message):
    path = info_json(tmp_path / "meta" / "info.json", NAMES)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message):
        read_dataset_info(path)


def test_found_through_train_config_root_or_lerobot_home(tmp_path, monkeypatch):
    ckpt = tmp_path / "pretrained_model"
    ckpt.mkdir()
    assert find_dataset_info(ckpt) is None  # no train_config.json
    local = info_json(tmp_path / "data" / "mine" / "meta" / "info.json", NAMES)
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/mine",
                                                                    "root": str(tmp_path / "data" / "mine")}}))
    assert find_dataset_info(ckpt) == local
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/koch_pick", "root": None}}))
    assert find_dataset_info(ckpt) is None  # not downloaded here
    cached = info_json(tmp_path / "home" / "me" / "koch_pick" / "meta" / "info.json", NAMES)
    assert find_dataset_info(ckpt) == cached


def with_dataset(tmp_path: Path, section) -> Path:  # noqa: ANN001
    pkg = tmp_path / "demo_act"
    shutil.copytree(DATA / "demo_act", pkg)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["dataset"] = section
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    return pkg


def test_manifest_section_loads_and_older_packages_have_none(tmp_path):
    older = with_dataset(tmp_path / "older", None)
    manifest = json.loads((older / "manifest.json").read_text())
    del manifest["dataset"]  # as every package exported before the section existed
    (older / "manifest.json").write_text(json.dumps(manifest))
    assert load_package(older).manifest.dataset is None
    assert load_package(DATA / "demo_act").manifest.dataset.state_names[-1] == "gripper.pos"  # the bundled demos'
    dataset = load_package(with_dataset(tmp_path, {"fps": 20, "state_names": NAMES, "action_names": NAMES})).manifest.dataset
    assert (dataset.fps, dataset.state_names, dataset.action_names) == (20, NAMES, NAMES)


@pytest.mark.parametrize("section, message", [
    ({"fps": 0}, r"manifest field 'dataset.fps' is 0; it must be within 1..1000"),
    ({"fps": 2.5}, r"manifest field 'dataset.fps' must be an integer"),
    ({"state_names": NAMES[:5]}, r"manifest field 'dataset.state_names' has 5 names for 6 values"),
    ({"action_names": NAMES[:5] + NAMES[:1]}, r"'dataset.action_names' must be non-empty, unique names"),
    ({"names": NAMES}, r"manifest field 'dataset' has unknown key\(s\) \['names'\]"),
])
def test_bad_dataset_section_names_the_field(tmp_path, section, message):
    with pytest.raises(edge.PackageError, match=message):
        load_package(with_dataset(tmp_path, section))


def test_edge_export_records_the_dataset_found_next_to_the_checkpoint(lerobot_fixtures, tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "pretrained_model"
    shutil.copytree(lerobot_fixtures / "act_env" / "pretrained_model", ckpt)
    (ckpt / "train_config.json").write_text(json.dumps({"dataset": {"repo_id": "me/koch_pick", "root": None}}))
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    reordered = NAMES[::-1]
    info_json(tmp_path / "home" / "me" / "koch_pick" / "meta" / "info.json", reordered, reordered, fps=15)
    assert export_main([str(ckpt), "--out", str(tmp_path / "pkg"), "--samples", "1"]) == 0
    dataset = json.loads((tmp_path / "pkg" / "manifest.json").read_text())["dataset"]
    assert dataset == {"fps": 15, "state_names": reordered, "action_names": reordered}
    # an info.json of another robot is refused before anything is exported
    wrong = info_json(tmp_path / "other" / "meta" / "info.json", NAMES[:5])
    assert export_main([str(ckpt), "--out", str(tmp_path / "pkg2"), "--dataset-info", str(wrong)]) == 2
    assert "lists 5 names but the checkpoint's observation.state has 6 values" in capsys.readouterr().err
    assert not (tmp_path / "pkg2").exists()


def test_out_of_distribution_warning_names_the_joint(tmp_path, caplog):
    import numpy as np

    pkg = with_dataset(tmp_path, {"state_names": NAMES, "action_names": NAMES})
    state = np.zeros(6, np.float32)
    state[2] = 1e4  # far outside any statistics
    with edge.load_policy(pkg) as policy, caplog.at_level("WARNING"):
        policy.reset()
        policy.select_action({"observation.state": state, "observation.environment_state": np.zeros(4, np.float32)})
    assert "observation.state: value 1e+04 at index 2 (elbow_flex.pos) is far outside" in caplog.text
