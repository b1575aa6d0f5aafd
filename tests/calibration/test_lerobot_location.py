"""Calibration where LeRobot keeps it: HF_LEROBOT_CALIBRATION -> $HF_LEROBOT_HOME/calibration -> $HF_HOME/lerobot/
calibration, then robots/<type>/<id>.json; `--id`, the robot file's `type:`/`id:`, `--calibration` overriding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calibration import CalibrationError
from calibration.lerobot_paths import calibration_root, hf_lerobot_home, joint_feature_names, robot_calibration_file
from edge.errors import RobotConfigError
from edge.robot.robot_file import load_robot_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("env, expected", [
    ({"HF_LEROBOT_CALIBRATION": "/c", "HF_LEROBOT_HOME": "/h", "HF_HOME": "/hf"}, "/c"),
    ({"HF_LEROBOT_HOME": "/h", "HF_HOME": "/hf"}, "/h/calibration"),
    ({"HF_HOME": "/hf", "XDG_CACHE_HOME": "/x"}, "/hf/lerobot/calibration"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface/lerobot/calibration"),
    ({}, str(Path("~/.cache/huggingface/lerobot/calibration").expanduser())),
])
def test_calibration_root_follows_lerobots_constants(env, expected):
    assert calibration_root(env) == Path(expected)
    assert robot_calibration_file("koch_follower", "arm", env) == Path(expected) / "robots" / "koch_follower" / "arm.json"


def test_lerobot_home_defaults_under_hf_home():
    assert hf_lerobot_home({"HF_HOME": "/hf"}) == Path("/hf/lerobot")
    assert joint_feature_names(["shoulder_pan", "left_gripper"]) == ["shoulder_pan.pos", "left_gripper.pos"]


def test_preset_with_id_uses_lerobots_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "cal"))
    koch = load_robot_config("koch", robot_id="my_koch")
    assert (koch.robot_type, koch.robot_id) == ("koch_follower", "my_koch")
    assert koch.calibration == tmp_path / "cal" / "robots" / "koch_follower" / "my_koch.json"
    assert koch.position_names[0] == "shoulder_pan.pos" and koch.position_names[-1] == "gripper.pos"
    omx = load_robot_config("omx", robot_id="blue")
    assert omx.calibration == tmp_path / "cal" / "robots" / "omx_follower" / "blue.json"
    override = koch.with_overrides(calibration=tmp_path / "mine.json")
    assert override.calibration == tmp_path / "mine.json"


def test_robot_file_type_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    del data["calibration"]
    data.update(type="so_like_follower", id="bench")
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
    robot = load_robot_config(tmp_path / "robot.yaml")
    assert robot.calibration == tmp_path / "home" / "calibration" / "robots" / "so_like_follower" / "bench.json"
    assert load_robot_config(tmp_path / "robot.yaml", robot_id="other").calibration.name == "other.json"
    data["calibration"] = "here.json"  # an explicit file still wins
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
    assert load_robot_config(tmp_path / "robot.yaml").calibration == tmp_path / "here.json"


def test_bimanual_buses_get_lerobots_suffixed_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    bus = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    buses = {side: {"port": f"/dev/tty{side}", "baudrate": bus["baudrate"], "motors": bus["motors"]}
             for side in ("left", "right")}
    data = {"type": "koch_follower", "id": "pair", "buses": buses, "control_hz": 30, "safety": bus["safety"]}
    (tmp_path / "bi.yaml").write_text(yaml.safe_dump(data))
    robot = load_robot_config(tmp_path / "bi.yaml")
    assert [b.calibration.name for b in robot.buses] == ["pair_left.json", "pair_right.json"]


def test_no_calibration_and_no_type_names_both_ways_out(tmp_path):
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    del data["calibration"]
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RobotConfigError, match=r"'calibration' is missing \(or give the robot a `type:` and an `id:`"):
        load_robot_config(tmp_path / "robot.yaml")
    data.update(type="koch_follower", id="../escape")
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(RobotConfigError, match="robot id '../escape'"):
        load_robot_config(tmp_path / "robot.yaml")


def test_preset_without_id_reads_the_older_edge_location_or_asks_for_an_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    koch = load_robot_config("koch")
    assert koch.calibration is None
    with pytest.raises(CalibrationError, match="--id NAME"):
        koch.load_calibration()
    legacy = tmp_path / ".cache" / "edge" / "calibration" / "koch.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("{}")
    assert load_robot_config("koch").calibration == legacy


def test_edge_calibrate_without_id_says_where_lerobot_keeps_it(tmp_path):
    cal = tmp_path / "cal"
    (cal / "robots" / "koch_follower").mkdir(parents=True)
    (cal / "robots" / "koch_follower" / "left_arm.json").write_text("{}")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "HF_LEROBOT_CALIBRATION": str(cal)}
    proc = subprocess.run([sys.executable, "-m", "edge", "calibrate", "--robot", "koch"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"{cal}/robots/koch_follower/<id>.json" in proc.stderr and "--id NAME" in proc.stderr
    assert "calibrated ids: left_arm" in proc.stderr
