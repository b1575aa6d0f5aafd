"""Robot file: the example loads, round trips through the writer, converts its safety section, and every bad
field is reported by name."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from calibration import CalibrationError, MotorCalibration, NormMode, save_calibration
from edge.errors import RobotConfigError
from edge.robot.bus_safety import safety_config
from edge.robot.robot_file import BusConfig, RobotConfig, load_robot_config
from edge.robot.robot_file.schema import SETUP_REGISTERS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def example() -> dict:
    return yaml.safe_load((EXAMPLES / "robot.yaml").read_text())


def load(tmp_path: Path, data: dict):
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_robot_config(path)


# The writer the round-trip tests use: the product only reads robot files.
def robot_config_to_dict(config: RobotConfig, base_dir: str | Path = ".") -> dict[str, Any]:
    """The YAML-ready form, with file paths written relative to `base_dir` (the robot file's folder)."""
    def relative(path: Path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())).as_posix()

    def bus_dict(bus: BusConfig) -> dict[str, Any]:
        motors = []
        for m in (*bus.motors, *bus.shadows):
            entry: dict[str, Any] = {"name": m.name, "id": m.id, "model": m.model}
            if m.shadow_of is not None:
                entry["shadow_of"] = m.shadow_of
            else:
                entry["norm_mode"] = m.norm_mode.value
            if m.full_turn:
                entry["full_turn"] = True
            for key, register in SETUP_REGISTERS.items():
                if register in m.setup:
                    entry[key] = m.operating_mode if key == "operating_mode" else m.setup[register]
            motors.append(entry)
        return {"port": bus.port, "baudrate": bus.baudrate, "calibration": relative(bus.calibration),
                "motors": motors}

    data: dict[str, Any] = (bus_dict(config.buses[0]) if config.buses[0].name == ""
                            else {"buses": {b.name: bus_dict(b) for b in config.buses}})
    data["control_hz"] = config.control_hz
    data["safety"] = {
        "max_step_deg": config.safety.max_step_deg,
        "error_window_s": config.safety.error_window_s,
        "reaction": config.safety.reaction,
        "watchdog_ms": config.safety.watchdog_ms,
    }
    data["features"] = {"state": config.features.state, "action": config.features.action}
    if config.rest_pose is not None:
        data["rest_pose"] = dict(config.rest_pose)
    if config.cameras:
        data["cameras"] = {}
        for feature, cam in config.cameras.items():
            entry = {"type": cam.type, "width": cam.width, "height": cam.height, **cam.options}  # options as written
            entry.update({k: getattr(cam, k) for k in ("fps", "max_age_ms") if getattr(cam, k) is not None})
            data["cameras"][feature] = entry
    return data


def save_robot_config(config: RobotConfig, path: str | Path) -> None:
    """Write a robot file that `load_robot_config` reads back to an equal RobotConfig."""
    path = Path(path)
    text = yaml.safe_dump(robot_config_to_dict(config, base_dir=path.parent), sort_keys=False)
    path.write_text(text, encoding="utf-8")


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
    from firmware_bridge.bus import DynamixelBus

    data = example()
    data["safety"]["max_step_deg"] = {n: 9.0 for n in NAMES} | {"gripper": 0.01}
    robot = load(tmp_path, data)
    calib = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(NAMES)}
    norm = robot.normalizer(calib)
    config = safety_config(robot, norm)
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
    config = safety_config(load(tmp_path, data), norm)
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


def with_camera(**camera) -> dict:
    data = example()
    data["cameras"] = {"observation.images.top": {"type": "opencv", "source": 0, "width": 640, "height": 480,
                                                  **camera}}
    return data


def test_cameras_setup_buses_and_shadows_round_trip(tmp_path: Path) -> None:
    (tmp_path / "top.avi").write_bytes(b"")  # a video file source is resolved against the robot file's folder
    data = with_camera(source="top.avi", fps=30, rotation=90, fourcc="MJPG", max_age_ms=120)
    data["motors"][2].update(operating_mode="extended_position", position_p_gain=1500, return_delay_time=3)
    data["motors"].append({"name": "elbow_shadow", "id": 7, "model": "xl330-m288", "shadow_of": "elbow_flex"})
    robot = load(tmp_path, data)
    cam = robot.cameras["observation.images.top"]
    assert (cam.type, cam.shape, cam.fps, cam.max_age_ms) == ("opencv", (480, 640, 3), 30, 120)
    assert cam.options == {"source": "top.avi", "rotation": 90, "fourcc": "MJPG"}  # the camera class checks these
    assert cam.base_dir == tmp_path.resolve()  # what a relative path among them is taken from
    assert robot.motor_names == NAMES  # the shadow is no joint
    bus = robot.bus
    assert bus.shadows[0].shadow_of == "elbow_flex" and bus.bus_motors()["elbow_shadow"] == (7, "xl330-m288")
    setup = bus.servo_setup()
    assert setup["elbow_flex"] == {"Return_Delay_Time": 3, "Operating_Mode": 4, "Position_P_Gain": 1500}
    assert setup["gripper"] == {"Return_Delay_Time": 0}  # only what the file names, plus the RDT default
    assert setup["elbow_shadow"] == {**setup["elbow_flex"], "Secondary_ID": 3}
    assert list(setup)[-1] == "elbow_shadow"  # after its joint's own setup
    save_robot_config(robot, tmp_path / "copy.yaml")
    assert load_robot_config(tmp_path / "copy.yaml") == robot


def test_multi_bus_file_names_joints_like_lerobot_bimanual(tmp_path: Path) -> None:
    arm = {k: v for k, v in example().items() if k in ("port", "baudrate", "calibration", "motors")}
    data = {k: v for k, v in example().items() if k not in arm and k != "rest_pose"}
    data["buses"] = {"left": arm, "right": {**arm, "port": "/dev/ttyUSB1", "calibration": "right.json"}}
    robot = load(tmp_path, data)
    assert robot.motor_names == [f"{side}_{n}" for side in ("left", "right") for n in NAMES]
    assert [b.name for b in robot.buses] == ["left", "right"] and robot.buses[1].motor_names == NAMES
    assert robot.buses[1].calibration == tmp_path / "right.json"
    with pytest.raises(RobotConfigError, match="this robot has 2 buses"):
        robot.port
    data["rest_pose"] = example()["rest_pose"]  # keyed by the bus-less names: not this robot's joints
    with pytest.raises(RobotConfigError, match="rest_pose.left_shoulder_pan' is missing"):
        load(tmp_path, data)
    data.pop("rest_pose")
    data["buses"]["right"]["port"] = arm["port"]
    with pytest.raises(RobotConfigError, match="two buses share a port"):
        load(tmp_path, data)
    # a /dev/serial/by-id style link and the device it points to are one port (here: /dev/null, a char device)
    (tmp_path / "usb-FTDI_arm-if00-port0").symlink_to("/dev/null")
    data["buses"]["left"]["port"], data["buses"]["right"]["port"] = str(tmp_path / "usb-FTDI_arm-if00-port0"), "/dev/null"
    with pytest.raises(RobotConfigError, match=f"two buses share a port \\({tmp_path}/usb-FTDI_arm-if00-port0 and "
                                               "/dev/null are the same device\\)"):
        load(tmp_path, data)
    data["buses"]["right"]["port"] = "/dev/ttyUSB1"
    save_robot_config(robot, tmp_path / "copy.yaml")
    assert load_robot_config(tmp_path / "copy.yaml") == robot


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["cameras"]["observation.images.top"].update(type="realsense"), "unknown camera type 'realsense'"),
        (lambda d: d["cameras"]["observation.images.top"].pop("type"), r"cameras.observation.images.top.type' is"),
        (lambda d: d["cameras"]["observation.images.top"].pop("width"), r"cameras.observation.images.top.width' is"),
        (lambda d: d["cameras"]["observation.images.top"].update(fps=0), "fps': must be positive"),
        (lambda d: d["motors"].append({"name": "s", "id": 9, "model": "xl330-m288", "shadow_of": "elbow"}),
         "'elbow' is not a joint on this bus"),
        (lambda d: d["motors"].append({"name": "s", "id": 9, "model": "xl430-w250", "shadow_of": "elbow_flex"}),
         "a shadow must be the same model as its joint"),
        (lambda d: d["motors"].append({"name": "s", "id": 9, "model": "xl330-m288", "shadow_of": "elbow_flex",
                                       "operating_mode": "position"}), r"unknown field\(s\) 'motors\[6\] \(s\)"),
    ],
)
def test_bad_camera_or_shadow_names_the_field(tmp_path: Path, change, message: str) -> None:
    data = with_camera()
    change(data)
    with pytest.raises(RobotConfigError, match=message):
        load(tmp_path, data)


def test_presets_and_overrides(tmp_path: Path) -> None:
    from edge.robot.robot_file import presets

    assert presets() == ["koch", "omx"]
    koch = load_robot_config("koch").with_overrides(port="/dev/ttyACM0", calibration=tmp_path / "k.json")
    assert koch.port == "/dev/ttyACM0" and koch.calibration == tmp_path / "k.json"
    assert [m.operating_mode for m in koch.motors] == ["extended_position"] * 5 + ["current_position"]
    assert [m.id for m in load_robot_config("omx").motors] == [11, 12, 13, 14, 15, 16]
    with pytest.raises(RobotConfigError, match="no robot file 'kock'.*presets: koch, omx"):
        load_robot_config("kock")
