"""Reading the robot file: YAML (or a preset name) -> a checked `RobotConfig`, every error naming its field.

Validation happens on load and every error names the field (`motors[2].norm_mode`,
`cameras.observation.images.top.width`, ...), so a typo never reaches the servos; a camera type's own options are
checked by its camera class (edge/robot/cameras.py) when the robot is built. Hardware facts (models, registers,
baud rates, watchdog bounds) come from firmware_bridge.tables, the reactions from the safety layer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from calibration.calibration_file import NormMode
from calibration.lerobot_paths import LEGACY_CALIBRATION_DIR, robot_calibration_file
from calibration.strict_files import brief, read_yaml
from edge.errors import RobotConfigError
from edge.robot.robot_file.presets import PRESETS_DIR, robot_file
from edge.robot.robot_file.schema import (
    SETUP_REGISTERS,
    BusConfig,
    CameraConfig,
    FeatureNames,
    MotorConfig,
    RobotConfig,
    SafetyLimits,
)
from edge.robot.robot_file.yaml_section import Section
from firmware_bridge import tables
from firmware_bridge.safety import REACTIONS

BAUDRATES = tuple(tables.BAUD_RATES.values())
WATCHDOG_MS = (tables.WATCHDOG_UNIT_MS, tables.WATCHDOG_MAX_UNITS * tables.WATCHDOG_UNIT_MS)  # Bus_Watchdog 1..max
CAMERA_TYPES = ("opencv",)  # the robot file's camera `type:`s: the keys of edge/robot/cameras.py CAMERAS (cameras.py
# reads this package's schema, so the reader cannot read the table; tests/robot/test_camera_table.py holds them equal)
CAMERA_KEYS = ("type", "width", "height", "fps", "max_age_ms")  # every camera type's keys (the rest: its options)


def load_robot_config(path: str | Path, robot_id: str | None = None) -> RobotConfig:
    """Read and validate a robot file (or a preset name); relative paths are resolved against the file's folder.

    `robot_id` (`--id`) names the arm, overriding the file's `id:`; with the file's `type:` it picks the calibration
    file where LeRobot keeps it (calibration/lerobot_paths.py) unless the file names one.
    """
    path = robot_file(path)
    legacy = None
    if path.parent.resolve() == PRESETS_DIR:  # the presets kept their calibration here before (docs/calibration.md)
        legacy = (LEGACY_CALIBRATION_DIR / f"{path.stem}.json").expanduser()
    data = read_yaml(path, RobotConfigError, "robot file")
    try:
        return robot_config_from_dict(data, base_dir=path.parent, robot_id=robot_id, legacy_calibration=legacy)
    except RobotConfigError as exc:
        raise RobotConfigError(f"{path}: {exc}") from None


def device_of(port: str) -> tuple[str, object]:
    """What identifies the device behind `port`: the character device's number when it exists (a symlink, a
    /dev/serial/by-id name and the tty itself agree), else the path with its symlinks resolved."""
    try:
        st = os.stat(port)
        if stat.S_ISCHR(st.st_mode):
            return ("device", st.st_rdev)
    except OSError:
        pass
    return ("path", os.path.realpath(port))


def robot_config_from_dict(data: Any, base_dir: str | Path = ".", robot_id: str | None = None,
                           legacy_calibration: Path | None = None) -> RobotConfig:
    """Build a RobotConfig from decoded YAML; relative paths (calibration, video files) are taken from `base_dir`.

    `robot_id` overrides the file's `id:`; `legacy_calibration` is used when a typed robot has no id and it exists.
    """
    base_dir = Path(base_dir)
    top = Section(data, "")
    common = ("control_hz", "safety")
    optional = ("rest_pose", "features", "cameras", "type", "id")
    robot_type = top.string("type") if "type" in top.data else None
    if robot_id is None and top.get("id") is not None:
        robot_id = top.string("id")
    if robot_id is not None and (not robot_id or "/" in robot_id or robot_id.startswith(".")):
        raise RobotConfigError(f"robot id {robot_id!r}: expected a file-name-like name such as my_koch")
    place = _CalibrationPlace(base_dir, robot_type, robot_id, legacy_calibration)
    if "buses" in top.data:
        top.check_keys(required=("buses", *common), optional=optional)
        raw = Section(top.get("buses"), "buses")
        if not raw.data:
            raise RobotConfigError("field 'buses': expected a mapping of bus name -> {port, baudrate, calibration, "
                                   "motors}")
        buses = tuple(_bus(Section(raw.get(name), raw.name(str(name))), str(name), place) for name in raw.data)
    else:
        top.check_keys(required=("port", "baudrate", "motors", *common), optional=(*optional, "calibration"))
        buses = (_bus(top, "", place),)
    joints = [bus.joint_name(m.name) for bus in buses for m in bus.motors]
    devices: dict[tuple[str, object], str] = {}
    for bus in buses:  # a by-id link and its tty are one port: two owners would write under each other
        other = devices.get(key := device_of(bus.port))
        if other is not None:
            same = bus.port if other == bus.port else f"{other} and {bus.port} are the same device"
            raise RobotConfigError(f"field 'buses': two buses share a port ({same}); one bus per serial port")
        devices[key] = bus.port
    if len(set(joints)) != len(joints):
        raise RobotConfigError(f"field 'buses': joint names collide ({', '.join(joints)})")
    control_hz = top.number("control_hz", positive=True)
    limits = _safety(Section(top.get("safety"), "safety"), joints)

    rest_pose = None
    motors = {bus.joint_name(m.name): m for bus in buses for m in bus.motors}
    if top.get("rest_pose") is not None:
        rest = Section(top.get("rest_pose"), "rest_pose")
        rest.check_keys(required=tuple(joints))
        rest_pose = {n: rest.number(n) for n in joints}
        for name, m in motors.items():
            lo, hi = {NormMode.RANGE_0_100: (0, 100), NormMode.RANGE_M100_100: (-100, 100)}.get(
                m.norm_mode, (-180, 180))
            if not lo <= rest_pose[name] <= hi:
                raise RobotConfigError(
                    f"field 'rest_pose.{name}': {rest_pose[name]} outside {lo}..{hi} ({m.norm_mode.value})")

    features = FeatureNames()
    if top.get("features") is not None:
        feats = Section(top.get("features"), "features")
        feats.check_keys(optional=("state", "action"))
        features = FeatureNames(**{k: feats.string(k) for k in ("state", "action") if k in feats.data})

    cameras: dict[str, CameraConfig] = {}
    if top.get("cameras") is not None:
        section = Section(top.get("cameras"), "cameras")
        for feature in section.data:
            if feature in (features.state, features.action) or not isinstance(feature, str):
                raise RobotConfigError(f"field 'cameras.{feature}': not a usable image feature name")
            cameras[feature] = _camera(Section(section.get(feature), section.name(feature)), base_dir)

    return RobotConfig(buses, control_hz, limits, rest_pose, features, cameras, robot_type, robot_id)


class _CalibrationPlace:
    """Where a bus's calibration file is: the file's `calibration:` (relative to the robot file), else LeRobot's
    <calibration>/robots/<type>/<id>.json (`<id>_<bus>.json` per bus, as LeRobot's bimanual robots name theirs)."""

    def __init__(self, base_dir: Path, robot_type: str | None, robot_id: str | None, legacy: Path | None) -> None:
        self.base_dir, self.robot_type, self.robot_id, self.legacy = base_dir, robot_type, robot_id, legacy

    def resolve(self, sec: Section, bus: str) -> Path | None:
        """The calibration file of one bus; None: a typed robot without an id (load_calibration says what to pass)."""
        if "calibration" in sec.data:
            return (self.base_dir / Path(sec.string("calibration")).expanduser()).resolve()
        if self.robot_type is None:
            raise RobotConfigError(f"field '{sec.name('calibration')}' is missing (or give the robot a `type:` and "
                                   "an `id:` to use LeRobot's calibration folder)")
        if self.robot_id is None:
            return self.legacy if self.legacy is not None and self.legacy.is_file() and not bus else None
        return robot_calibration_file(self.robot_type, f"{self.robot_id}_{bus}" if bus else self.robot_id)


def _bus(sec: Section, name: str, place: _CalibrationPlace) -> BusConfig:
    """One bus: port, baud rate, calibration file and motor list (top level of a single-bus file, or `buses.<name>`)."""
    if name:
        sec.check_keys(required=("port", "baudrate", "motors"), optional=("calibration",))
    port = sec.string("port")
    baudrate = sec.integer("baudrate")
    if baudrate not in BAUDRATES:
        raise RobotConfigError(f"field '{sec.name('baudrate')}': {baudrate} is not a Dynamixel X baud rate {BAUDRATES}")
    joints, shadows = _motors(sec.get("motors"), sec.name("motors"))
    return BusConfig(name, port, baudrate, joints, place.resolve(sec, name), shadows)


def _safety(safety: Section, joints: list[str]) -> SafetyLimits:
    """The safety section; a per-joint max_step_deg must name every joint."""
    safety.check_keys(required=("max_step_deg", "error_window_s", "reaction", "watchdog_ms"))
    reaction = safety.string("reaction")
    if reaction not in REACTIONS:
        raise RobotConfigError(f"field 'safety.reaction': {brief(reaction)} is not one of {', '.join(REACTIONS)}")
    raw_step = safety.get("max_step_deg")
    if isinstance(raw_step, dict):
        step = Section(raw_step, "safety.max_step_deg")
        step.check_keys(required=tuple(joints))
        max_step: float | dict[str, float] = {n: step.number(n, positive=True) for n in joints}
    else:
        max_step = safety.number("max_step_deg", positive=True)
    watchdog_ms = None if safety.get("watchdog_ms") is None else safety.integer("watchdog_ms")
    if watchdog_ms is not None and not WATCHDOG_MS[0] <= watchdog_ms <= WATCHDOG_MS[1]:
        raise RobotConfigError(f"field 'safety.watchdog_ms': must be in {WATCHDOG_MS[0]}..{WATCHDOG_MS[1]} "
                               f"(the servo's Bus Watchdog, {tables.WATCHDOG_UNIT_MS} ms units) or null for off, got {watchdog_ms}")
    return SafetyLimits(max_step, safety.number("error_window_s", positive=True), reaction, watchdog_ms)


def _motors(raw: Any, path: str) -> tuple[tuple[MotorConfig, ...], tuple[MotorConfig, ...]]:
    """Parse and check one bus's motor list: unique names and ids, known models, modes and setup registers.
    Returns (joints, shadows)."""
    if not isinstance(raw, list) or not raw:
        raise RobotConfigError(f"field '{path}': expected a non-empty list of {{name, id, model, norm_mode}}")
    motors: list[MotorConfig] = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where = f"{path}[{i}] ({entry['name']})"
        sec = Section(entry, where)
        shadow = isinstance(entry, dict) and "shadow_of" in entry
        if shadow:
            sec.check_keys(required=("name", "id", "model", "shadow_of"))
        else:
            sec.check_keys(required=("name", "id", "model", "norm_mode"), optional=("full_turn", *SETUP_REGISTERS))
        name = sec.string("name")
        motor_id = sec.integer("id")
        if not 0 <= motor_id <= tables.MAX_ID:
            raise RobotConfigError(f"field '{where}.id': must be in 0..{tables.MAX_ID}, got {motor_id}")
        model = sec.string("model")
        if model not in tables.MODELS:
            raise RobotConfigError(
                f"field '{where}.model': unknown model {brief(model)} (known: {', '.join(tables.MODELS)})")
        for other in motors:
            if other.name == name:
                raise RobotConfigError(f"field '{where}.name': duplicate motor name {brief(name)}")
            if other.id == motor_id:
                raise RobotConfigError(f"field '{where}.id': id {motor_id} already used by '{other.name}'")
        if shadow:
            motors.append(MotorConfig(name, motor_id, model, None, shadow_of=sec.string("shadow_of")))
            continue
        try:
            mode = NormMode(sec.get("norm_mode"))
        except ValueError:
            raise RobotConfigError(
                f"field '{where}.norm_mode': unknown mode {brief(sec.get('norm_mode'))} "
                f"(expected {', '.join(m.value for m in NormMode)})") from None
        full_turn = sec.get("full_turn", False)
        if not isinstance(full_turn, bool):
            raise RobotConfigError(f"field '{where}.full_turn': expected true or false, got {brief(full_turn)}")
        motors.append(MotorConfig(name, motor_id, model, mode, full_turn, _setup(sec, model)))
    joints = tuple(m for m in motors if m.shadow_of is None)
    shadows = tuple(m for m in motors if m.shadow_of is not None)
    by_name = {m.name: m for m in joints}
    for i, m in enumerate(motors):
        if m.shadow_of is None:
            continue
        where = f"{path}[{i}] ({m.name}).shadow_of"
        primary = by_name.get(m.shadow_of)
        if primary is None:
            raise RobotConfigError(f"field '{where}': {brief(m.shadow_of)} is not a joint on this bus")
        if primary.model != m.model:
            raise RobotConfigError(f"field '{where}': a shadow must be the same model as its joint "
                                   f"({m.model} vs {primary.model})")
    if not joints:
        raise RobotConfigError(f"field '{path}': no joints (every motor is a shadow)")
    return joints, shadows


def _setup(sec: Section, model_name: str) -> dict[str, int]:
    """The setup registers a motor entry names, checked against the model's control table."""
    model = tables.model(model_name)
    setup: dict[str, int] = {}
    for key, register in SETUP_REGISTERS.items():
        if key not in sec.data:
            continue
        if register not in model.registers:
            raise RobotConfigError(f"field '{sec.name(key)}': {model_name} has no {register} register")
        if key == "operating_mode":
            mode = sec.get(key)
            if mode not in tables.OPERATING_MODES:
                raise RobotConfigError(f"field '{sec.name(key)}': unknown mode {brief(mode)} "
                                       f"(known: {', '.join(tables.OPERATING_MODES)})")
            if tables.OPERATING_MODES[mode] not in model.operating_modes:
                raise RobotConfigError(f"field '{sec.name(key)}': {model_name} has no {mode} mode")
            if mode not in tables.POSITION_MODES:
                raise RobotConfigError(f"field '{sec.name(key)}': {brief(mode)} does not follow Goal_Position, which is "
                                       f"how the policy drives a joint (use {', '.join(tables.POSITION_MODES)})")
            setup[register] = tables.OPERATING_MODES[mode]
            continue
        value = sec.integer(key)
        reg = model.registers[register]
        if not reg.lo <= value <= reg.hi:
            raise RobotConfigError(f"field '{sec.name(key)}': {value} outside {reg.lo}..{reg.hi} ({register})")
        setup[register] = value
    return setup


def _camera(sec: Section, base_dir: Path) -> CameraConfig:
    """One camera entry: its type and the keys every type has; the type's own keys are left to its camera class."""
    sec.check_keys(required=("type", "width", "height"), optional=tuple(sec.data))  # its options: its class's to check
    kind = sec.string("type")
    if kind not in CAMERA_TYPES:
        raise RobotConfigError(f"field '{sec.name('type')}': unknown camera type {brief(kind)} "
                               f"(known: {', '.join(CAMERA_TYPES)})")
    width, height = sec.integer("width"), sec.integer("height")
    for key, value in (("width", width), ("height", height)):
        if value <= 0:
            raise RobotConfigError(f"field '{sec.name(key)}': must be positive, got {value}")
    fps = None if sec.get("fps") is None else sec.number("fps", positive=True)
    max_age = None if sec.get("max_age_ms") is None else sec.number("max_age_ms", positive=True)
    options = {str(k): v for k, v in sec.data.items() if k not in CAMERA_KEYS}
    return CameraConfig(kind, width, height, fps, max_age, options, base_dir.resolve())
