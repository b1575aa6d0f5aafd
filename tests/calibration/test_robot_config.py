"""Robot file: the example loads, round trips through the writer, converts its safety section, and every bad
field is reported by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from calibration import (
    CalibrationError,
    MotorCalibration,
    NormMode,
    RobotConfigError,
    load_robot_config,
    save_calibration,
    save_robot_config,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def example() -> dict:
    return yaml.safe_load((EXAMPLES / "robot.yaml").read_text())


def load(tmp_path: Path, data: dict):
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_robot_config(path)


def test_example_robot_and_calibration_load_together() -> None:
    robot = load_robot_config(EXAMPLES / "robot.yaml")
    assert robot.motor_names == NAMES
    assert [m.id for m in robot.motors] == [1, 2, 3, 4, 5, 6]
    assert robot.motors[-1].norm_mode is NormMode.RANGE_0_100
    assert robot.calibration == (EXAMPLES / "calibration.json").resolve()
    assert robot.bus_motors()["elbow_flex"] == (3, "xl330-m288")
    assert robot.features.state == "observation.state" and robot.features.action == "action"
    assert list(robot.load_calibration()) == NAMES
    state = robot.normalizer().observation({n: 2047 for n in NAMES})
    assert state.shape == (6,)


def test_writer_round_trips_with_relative_calibration_path(tmp_path: Path) -> None:
    robot = load_robot_config(EXAMPLES / "robot.yaml")
    out = tmp_path / "arm" / "robot.yaml"
    out.parent.mkdir()
    save_robot_config(robot, out)
    written = yaml.safe_load(out.read_text())
    assert not Path(written["calibration"]).is_absolute()
    assert (out.parent / written["calibration"]).resolve() == robot.calibration
    assert load_robot_config(out) == robot


def test_writer_keeps_a_sibling_calibration_file_relative(tmp_path: Path) -> None:
    robot = load(tmp_path, example())
    save_robot_config(robot, tmp_path / "copy.yaml")
    assert yaml.safe_load((tmp_path / "copy.yaml").read_text())["calibration"] == "calibration.json"


def test_safety_section_converted_for_firmware_bridge(tmp_path: Path) -> None:
    safety = pytest.importorskip("firmware_bridge.safety")
    from firmware_bridge import DynamixelBus

    data = example()
    data["safety"]["max_step_deg"] = {n: 9.0 for n in NAMES} | {"gripper": 0.01}
    robot = load(tmp_path, data)
    calib = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(NAMES)}
    norm = robot.normalizer(calib)
    config = robot.safety_config(norm)
    assert isinstance(config, safety.SafetyConfig)
    assert config.max_step_ticks["shoulder_pan"] == round(9.0 * 4095 / 360) == 102
    assert config.max_step_ticks["gripper"] == 1  # never zero: a zero step would freeze the joint
    assert (config.reaction, config.watchdog_ms, config.error_window_s) == ("hold", 200, 0.5)
    # rest pose in policy units -> goal ticks: shoulder_lift -95 of range_m100_100 over 1000..3000
    assert config.rest_pose["shoulder_lift"] == int((-95 + 100) / 200 * 2000 + 1000) == 1050
    assert config.rest_pose["gripper"] == 1100
    assert norm.limits["elbow_flex"] == (1000, 3000)
    # what a control loop builds from them (the bus is not opened by the constructor)
    layer = safety.SafetyLayer(DynamixelBus("/dev/null", robot.bus_motors()), norm.limits, config)
    assert layer.max_step["wrist_flex"] == 102

    data["safety"]["max_step_deg"] = 6.0
    data["safety"]["watchdog_ms"] = None
    config = load(tmp_path, data).safety_config(norm)
    assert set(config.max_step_ticks.values()) == {68} and config.watchdog_ms is None


def mutate(path: list, value=None, delete: bool = False):
    def apply(data: dict) -> dict:
        data = copy.deepcopy(data)
        node = data
        for key in path[:-1]:
            node = node[key]
        if delete:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return data
    return apply


@pytest.mark.parametrize(
    "change, message",
    [
        (mutate(["port"], delete=True), "field 'port' is missing"),
        (mutate(["safety", "watchdog_ms"], delete=True), "field 'safety.watchdog_ms' is missing"),
        (mutate(["baudrate"], 12345), "field 'baudrate': 12345 is not a Dynamixel X baud rate"),
        (mutate(["control_hz"], 0), "field 'control_hz': must be positive"),
        (mutate(["control_hz"], "fast"), "field 'control_hz': expected a number"),
        (mutate(["motors", 2, "norm_mode"], "radians"), r"field 'motors\[2\] \(elbow_flex\).norm_mode': unknown mode 'radians'"),
        (mutate(["motors", 1, "model"], "ax-12"), r"field 'motors\[1\] \(shoulder_lift\).model': unknown model 'ax-12'"),
        (mutate(["motors", 5, "id"], 1), r"field 'motors\[5\] \(gripper\).id': id 1 already used by 'shoulder_pan'"),
        (mutate(["motors", 3, "name"], "elbow_flex"), r"'motors\[3\] \(elbow_flex\).name': duplicate motor name"),
        (mutate(["motors", 0, "id"], 300), r"field 'motors\[0\] \(shoulder_pan\).id': must be in 0..252"),
        (mutate(["motors", 0, "mode"], "degrees"), r"unknown field\(s\) 'motors\[0\] \(shoulder_pan\).mode'"),
        (mutate(["motors"], []), "field 'motors': expected a non-empty list"),
        (mutate(["safety", "reaction"], "panic"), "field 'safety.reaction': 'panic' is not one of hold, torque_off"),
        (mutate(["safety", "max_step_deg"], {"gripper": 3}), "field 'safety.max_step_deg.shoulder_pan' is missing"),
        (mutate(["safety", "max_step_deg"], -1), "field 'safety.max_step_deg': must be positive"),
        (mutate(["safety", "watchdog_ms"], 5), r"field 'safety.watchdog_ms': must be in 20..2540"),
        (mutate(["rest_pose", "gripper"], 150), "field 'rest_pose.gripper': 150.0 outside 0..100"),
        (mutate(["rest_pose", "elbow"], 0), r"unknown field\(s\) 'rest_pose.elbow'"),
        (mutate(["features", "state"], ""), "field 'features.state': expected a non-empty string"),
        (mutate(["contol_hz"], 30), r"unknown field\(s\) 'contol_hz'"),
    ],
)
def test_bad_robot_file_names_the_field(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(RobotConfigError, match=message) as err:
        load(tmp_path, change(example()))
    assert str(tmp_path / "robot.yaml") in str(err.value)


def test_optional_sections_default(tmp_path: Path) -> None:
    data = example()
    del data["rest_pose"], data["features"]
    robot = load(tmp_path, data)
    assert robot.rest_pose is None and robot.features.state == "observation.state"


def test_unreadable_robot_files(tmp_path: Path) -> None:
    with pytest.raises(RobotConfigError, match="cannot read robot file"):
        load_robot_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("port: [unclosed")
    with pytest.raises(RobotConfigError, match="not valid YAML"):
        load_robot_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(RobotConfigError, match="<top level>"):
        load_robot_config(tmp_path / "list.yaml")


def calibrated(tmp_path: Path, **changes) -> tuple:
    robot = load(tmp_path, example())
    calib = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(NAMES)}
    calib.update(changes)
    save_calibration({k: v for k, v in calib.items() if v is not None}, robot.calibration)
    return robot


def test_calibration_must_match_the_robot_file(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="motor 'wrist_roll' is missing"):
        calibrated(tmp_path, wrist_roll=None).load_calibration()
    with pytest.raises(CalibrationError, match="motor 'gripper': id 9 but the robot file says 6"):
        calibrated(tmp_path, gripper=MotorCalibration(9, 0, 0, 1000, 3000)).load_calibration()
    with pytest.raises(CalibrationError, match="motor.*tool not in the robot file"):
        calibrated(tmp_path, tool=MotorCalibration(7, 0, 0, 1000, 3000)).load_calibration()
    robot = calibrated(tmp_path)
    data = json.loads(robot.calibration.read_text())
    data["elbow_flex"]["range_min"] = 3000
    robot.calibration.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="calibration.json: motor 'elbow_flex': range_min"):
        robot.normalizer()
