"""The dataset's joint names against the robot file's: another order is mapped by name (the policy sees its own
order, each action reaches the servo of the joint it names), other names are refused before anything is written,
a package without names runs with one warning; bimanual buses use LeRobot's left_/right_ prefixes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from robot_helpers import edit_robot_file, servo_writes

import edge as edge_runtime
from edge.errors import PackageError
from edge.robot.drive import DriveOptions, drive
from edge.robot.joint_names import joint_order
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.runtime.package import DatasetInfo

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
ENV = {"observation.environment_state": np.zeros(4, np.float32)}


def pos(names: list[str]) -> list[str]:
    return [f"{n}.pos" for n in names]


def test_same_order_maps_nothing_and_says_nothing():
    order = joint_order(DatasetInfo(30, pos(JOINTS), pos(JOINTS)), JOINTS)
    assert order.identity and order.note is None


def test_another_order_is_mapped_by_name():
    policy = ["gripper", "shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"]
    order = joint_order(DatasetInfo(None, pos(policy), pos(policy)), JOINTS)
    robot_state = np.arange(6.0)  # robot joint i holds value i
    assert [JOINTS[int(i)] for i in robot_state[order.to_policy]] == policy
    action = np.array([10.0, 11, 12, 13, 14, 15])  # in the policy's order
    robot_action = action[order.to_robot]
    assert {JOINTS[i]: robot_action[i] for i in range(6)} == dict(zip(policy, action))
    assert "mapped by name (policy: gripper.pos, shoulder_pan.pos" in order.note
    assert "robot file: shoulder_pan.pos, shoulder_lift.pos" in order.note


def test_other_names_are_refused_with_both_lists():
    policy = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_flex", "wrist_roll", "gripper"]
    with pytest.raises(PackageError) as err:
        joint_order(DatasetInfo(None, pos(policy), None), JOINTS)
    text = str(err.value)
    assert "policy only: elbow.pos; robot only: elbow_flex.pos" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert rows["2"] == ["elbow.pos", "elbow_flex.pos", "<-", "differs"]
    assert rows["0"] == ["shoulder_pan.pos", "shoulder_pan.pos"] and rows["#"] == ["policy", "(dataset)", "robot", "file"]


def test_no_names_warns_once_and_runs_in_file_order():
    order = joint_order(None, JOINTS)
    assert order.identity and "records no joint names" in order.note and "--dataset-info" in order.note


def test_bimanual_names_carry_the_bus_prefix():
    robot = [f"{side}_{j}" for side in ("left", "right") for j in JOINTS]
    order = joint_order(DatasetInfo(None, pos(robot), pos(robot)), robot)
    assert order.identity
    with pytest.raises(PackageError, match="policy only: shoulder_pan.pos"):
        joint_order(DatasetInfo(None, pos(JOINTS + JOINTS), None), robot)


def package_with_names(act_env: Path, tmp_path: Path, names: list[str]) -> Path:
    package = tmp_path / "pkg"
    shutil.copytree(act_env, package)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["dataset"] = {"fps": 30, "state_names": pos(names), "action_names": pos(names)}
    (package / "manifest.json").write_text(json.dumps(manifest))
    return package


@pytest.fixture(scope="module")
def act_env(export_fixture) -> Path:  # noqa: ANN001
    return export_fixture("act_env")


def test_edge_run_maps_a_reordered_robot_file_by_name(arm, act_env, tmp_path, capsys):
    emulator, robot_file = arm
    # the robot file lists the gripper first; the dataset recorded it last
    data = load_robot_config(robot_file)
    motors = yaml.safe_load(robot_file.read_text())["motors"]
    edit_robot_file(robot_file, motors=[motors[-1], *motors[:-1]],
                    safety={"max_step_deg": 360.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": None})
    config = load_robot_config(robot_file)
    assert config.motor_names[0] == "gripper" and data.motor_names[-1] == "gripper"
    ids = {m.name: m.id for m in config.motors}
    start = {name: emulator.register(ids[name], "Present_Position") for name in JOINTS}
    records = []
    with edge_runtime.load_policy(package_with_names(act_env, tmp_path, JOINTS)) as policy:
        robot = Robot(config, static_features=ENV, bus_timeout_slack_ms=15.0)
        drive(robot, policy, DriveOptions(hz=30, duration_s=0.2, status=False), on_tick=records.append)
        norm = robot.normalizer
    assert capsys.readouterr().err.count("mapped by name") == 1
    assert robot.position_names == pos(JOINTS)  # what a recording or the live view labels: the policy's order
    # the policy saw its own order: joint k of the state is the dataset's k-th name
    expected = norm.ticks_to_policy([start[n] for n in config.motor_names])[robot.joint_order.to_policy]
    np.testing.assert_allclose(records[0].present, expected, atol=0.2)
    # the goal each tick is the action, joint for joint (no step cap; both in the policy's order) unless a bus
    # error made the safety layer hold; and each servo holds the last goal of the joint of its name
    clean = [r for prev, r in zip(records, records[1:]) if r.bus_errors == prev.bus_errors and r.action is not None]
    assert clean
    for r in clean:
        np.testing.assert_allclose(r.goal, np.clip(r.action, [-100] * 5 + [0], 100), atol=0.15)
    last = records[-1].goal
    held = norm.ticks_to_policy([emulator.register(ids[m], "Goal_Position") for m in config.motor_names])  # robot order
    for k, name in enumerate(JOINTS):
        assert abs(held[config.motor_names.index(name)] - last[k]) < 0.15, name


def test_edge_run_refuses_other_names_before_writing(arm, act_env, tmp_path):
    emulator, robot_file = arm
    names = [*JOINTS[:2], "elbow", *JOINTS[3:]]
    with edge_runtime.load_policy(package_with_names(act_env, tmp_path, names)) as policy:
        robot = Robot(load_robot_config(robot_file), static_features=ENV, bus_timeout_slack_ms=15.0)
        with pytest.raises(PackageError, match="do not match the robot's joints"):
            drive(robot, policy, DriveOptions(hz=30, duration_s=0.2, status=False))
    assert all(not writes for writes in servo_writes(emulator).values())
