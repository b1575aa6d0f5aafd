"""The robot file: one YAML per robot (buses, motors and their setup, calibration, cameras, rate, safety, features).

Everything the runtime needs to talk to a robot and to map its joints and cameras onto a policy's features lives
here, so the same policy package runs on two robots that differ only by their robot files. Validation happens on
load and every error names the field (`motors[2].norm_mode`, `cameras.observation.images.top.rotation`, ...), so a
typo never reaches the servos. `koch` and `omx` name bundled presets (calibration/presets/).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration.calibration_file import (
    MODEL_RESOLUTION,
    MotorCalibration,
    NormMode,
    load_calibration,
)
from calibration.errors import CalibrationError, RobotConfigError
from calibration.joint_normalizer import JointNormalizer
from firmware_bridge import tables
from firmware_bridge.safety import SafetyConfig
from firmware_bridge.tables import POSITION_MODES

REACTIONS = ("hold", "torque_off")
WATCHDOG_MS = (20, 2540)  # Bus_Watchdog 1..127 in 20 ms units
BAUDRATES = (9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 4_500_000)
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
# Robot-file key -> control-table register, in the order they are written at connect (LeRobot's configure():
# Return_Delay_Time, then the operating mode, then limits, profiles and gains).
SETUP_REGISTERS = {
    "return_delay_time": "Return_Delay_Time",
    "operating_mode": "Operating_Mode",
    "current_limit": "Current_Limit",
    "profile_velocity": "Profile_Velocity",
    "profile_acceleration": "Profile_Acceleration",
    "position_p_gain": "Position_P_Gain",
    "position_i_gain": "Position_I_Gain",
    "position_d_gain": "Position_D_Gain",
}
ROTATIONS = (0, 90, 180, 270)
CAMERA_TYPES = ("opencv",)
DEFAULT_FRAME_PERIODS = 3  # a frame older than this many frame periods is a camera fault (unless max_age_ms says)


@dataclass(frozen=True)
class MotorConfig:
    """One servo. `setup` holds the registers the file names ({register: value}), written with torque off at
    connect; `full_turn` joints (e.g. a continuous wrist roll) get the whole 0..4095 range, as LeRobot does.
    A shadow (`shadow_of`: a joint) is a second servo on that joint: not a joint itself, never commanded."""

    name: str
    id: int
    model: str
    norm_mode: NormMode | None
    full_turn: bool = False
    setup: dict[str, int] = field(default_factory=dict)
    shadow_of: str | None = None

    @property
    def resolution(self) -> int:
        """Encoder ticks per turn."""
        return MODEL_RESOLUTION[self.model]

    @property
    def operating_mode(self) -> str | None:
        """The operating mode the file sets (a `tables.OPERATING_MODES` name), None if it leaves the servo's."""
        number = self.setup.get("Operating_Mode")
        return None if number is None else next(k for k, v in tables.OPERATING_MODES.items() if v == number)


@dataclass(frozen=True)
class BusConfig:
    """One serial bus: its port, rate, joints (vector order, names as on this bus), shadows and calibration file.

    `name` is "" for a single-bus robot file; otherwise joints are called `<name>_<motor>` in the policy's vector
    (LeRobot's bimanual naming, e.g. `left_shoulder_pan`) and the calibration file uses the bus's own names.
    """

    name: str
    port: str
    baudrate: int
    motors: tuple[MotorConfig, ...]
    calibration: Path
    shadows: tuple[MotorConfig, ...] = ()

    @property
    def motor_names(self) -> list[str]:
        """Joint names on this bus, in vector order."""
        return [m.name for m in self.motors]

    def joint_name(self, motor: str) -> str:
        """The name of this bus's `motor` in the robot's joint vector."""
        return f"{self.name}_{motor}" if self.name else motor

    def bus_motors(self) -> dict[str, tuple[int, str]]:
        """`{name: (id, model)}` as `firmware_bridge.DynamixelBus` takes it, joints then shadows."""
        return {m.name: (m.id, m.model) for m in (*self.motors, *self.shadows)}

    def servo_setup(self) -> dict[str, dict[str, int]]:
        """What connect writes (torque off), in order, `{motor: {register: value}}`: for each joint Return_Delay_Time 0
        unless the file says otherwise plus every register the file names; for each shadow its joint's registers
        (the Secondary ID cannot reach EEPROM, so the mode is set on the shadow itself), then Secondary_ID = the
        joint's id, after which the shadow follows every command to the joint and is never addressed again."""
        setup = {}
        for m in self.motors:
            registers = {"Return_Delay_Time": 0, **m.setup}
            setup[m.name] = {r: registers[r] for r in SETUP_REGISTERS.values() if r in registers}
        primary = {m.name: m for m in self.motors}
        for s in self.shadows:
            setup[s.name] = {**setup[s.shadow_of or ""], "Secondary_ID": primary[s.shadow_of or ""].id}
        return setup

    def load_calibration(self) -> dict[str, MotorCalibration]:
        """Read this bus's calibration file and check it describes exactly its joints with their ids."""
        calibration = load_calibration(self.calibration)
        self.check_calibration(calibration, source=str(self.calibration))
        return calibration

    def check_calibration(self, calibration: dict[str, MotorCalibration], source: str = "calibration") -> None:
        """Raise CalibrationError naming the motor if `calibration` does not match this bus's joints."""
        for m in self.motors:
            if m.name not in calibration:
                raise CalibrationError(f"{source}: motor '{m.name}' is missing")
            if calibration[m.name].id != m.id:
                raise CalibrationError(
                    f"{source}: motor '{m.name}': id {calibration[m.name].id} but the robot file says {m.id}"
                )
        extra = [name for name in calibration if name not in self.motor_names]
        if extra:
            raise CalibrationError(f"{source}: motor(s) {', '.join(extra)} not in the robot file")


@dataclass(frozen=True)
class CameraConfig:
    """One camera feeding one image feature, as LeRobot's OpenCVCameraConfig describes it.

    source: a device index, a /dev/video* path, a video file or image sequence (`frame_%03d.jpg`; played at its own
    frame rate, looping) or a GStreamer pipeline string (contains '!'). width/height: the frame the policy gets, after `rotation` (degrees clockwise;
    90/270 capture height x width, as LeRobot). max_age_ms: an older frame at a tick is a camera fault (None: 3
    frame periods).
    """

    source: int | str
    width: int
    height: int
    fps: float | None = None
    fourcc: str | None = None
    rotation: int = 0
    max_age_ms: float | None = None
    type: str = "opencv"

    @property
    def kind(self) -> str:
        """"index", "device", "gstreamer" or "file"."""
        if isinstance(self.source, int):
            return "index"
        if "!" in self.source:
            return "gstreamer"
        return "device" if self.source.startswith("/dev/") else "file"

    @property
    def shape(self) -> tuple[int, int, int]:
        """The delivered frame: (height, width, 3), uint8 RGB."""
        return (self.height, self.width, 3)


@dataclass(frozen=True)
class SafetyLimits:
    """Safety section in physical units; `RobotConfig.safety_config` converts it for firmware_bridge's safety layer.

    max_step_deg: largest goal change per control tick, in degrees of servo shaft (one number, or one per joint).
    error_window_s: how long bus or camera faults may persist before `reaction` fires.
    reaction: `hold` (keep the last good goal, torque on) or `torque_off`.
    watchdog_ms: the servos' Bus Watchdog: no packet for this long stops them (None: off).
    """

    max_step_deg: float | dict[str, float]
    error_window_s: float
    reaction: str
    watchdog_ms: int | None


@dataclass(frozen=True)
class FeatureNames:
    """Policy feature names the joints feed, in joint order (LeRobot's defaults)."""

    state: str = "observation.state"
    action: str = "action"


@dataclass(frozen=True)
class RobotConfig:
    """One robot: one or more buses (joint vector = their joints in file order), cameras, rate, safety."""

    buses: tuple[BusConfig, ...]
    control_hz: float
    safety: SafetyLimits
    rest_pose: dict[str, float] | None = None
    features: FeatureNames = field(default_factory=FeatureNames)
    cameras: dict[str, CameraConfig] = field(default_factory=dict)

    @property
    def motors(self) -> tuple[MotorConfig, ...]:
        """Every joint in vector order, named as in the vector (`left_gripper` on a bimanual robot)."""
        return tuple(replace(m, name=bus.joint_name(m.name)) for bus in self.buses for m in bus.motors)

    @property
    def motor_names(self) -> list[str]:
        """Joint names in vector order (the order of `observation.state` and `action`)."""
        return [m.name for m in self.motors]

    @property
    def bus(self) -> BusConfig:
        """The only bus of a single-bus robot file."""
        if len(self.buses) != 1:
            raise RobotConfigError(f"this robot has {len(self.buses)} buses "
                                   f"({', '.join(b.name for b in self.buses)}); name one")
        return self.buses[0]

    @property
    def port(self) -> str:
        """Serial port of a single-bus robot."""
        return self.bus.port

    @property
    def baudrate(self) -> int:
        """Baud rate of a single-bus robot."""
        return self.bus.baudrate

    @property
    def calibration(self) -> Path:
        """Calibration file of a single-bus robot."""
        return self.bus.calibration

    def bus_motors(self) -> dict[str, tuple[int, str]]:
        """`{name: (id, model)}` of a single-bus robot, as `firmware_bridge.DynamixelBus` takes it."""
        return self.bus.bus_motors()

    def with_overrides(self, port: str | None = None, calibration: str | Path | None = None) -> RobotConfig:
        """The same robot on another port or with another calibration file (single-bus robots; e.g. a preset)."""
        if port is None and calibration is None:
            return self
        bus = self.bus
        bus = replace(bus, port=port or bus.port,
                      calibration=bus.calibration if calibration is None else Path(calibration).expanduser().resolve())
        return replace(self, buses=(bus,))

    def load_calibration(self) -> dict[str, MotorCalibration]:
        """Every bus's calibration file, checked against its joints, keyed by joint name."""
        return {bus.joint_name(name): calib for bus in self.buses for name, calib in bus.load_calibration().items()}

    def check_calibration(self, calibration: dict[str, MotorCalibration], source: str = "calibration") -> None:
        """Raise CalibrationError naming the joint if `calibration` (keyed by joint name) does not match."""
        for bus in self.buses:
            own = {m: calibration[bus.joint_name(m)] for m in bus.motor_names if bus.joint_name(m) in calibration}
            for m in bus.motor_names:
                if bus.joint_name(m) not in calibration:
                    raise CalibrationError(f"{source}: motor '{bus.joint_name(m)}' is missing")
            bus.check_calibration(own, source)
        extra = [name for name in calibration if name not in self.motor_names]
        if extra:
            raise CalibrationError(f"{source}: motor(s) {', '.join(extra)} not in the robot file")

    def normalizer(self, calibration: dict[str, MotorCalibration] | None = None) -> JointNormalizer:
        """The tick <-> policy-unit converter for every joint (loads the calibration files unless given one)."""
        if calibration is None:
            calibration = self.load_calibration()
        else:
            self.check_calibration(calibration)
        return JointNormalizer(
            self.motor_names,
            [m.norm_mode for m in self.motors],
            calibration,
            resolutions=[m.resolution for m in self.motors],
        )

    def safety_config(self, normalizer: JointNormalizer, bus: BusConfig | None = None) -> SafetyConfig:
        """The safety section for one bus (default: the only one) as firmware_bridge's `SafetyConfig` (raw ticks,
        keyed by the bus's motor names).

        Degrees become ticks at 4095/360 (never below 1 tick); the rest pose goes through `normalizer.goal`, so
        it is clamped to the calibrated range. Use with `SafetyLayer(bus, limits, config)`.
        """
        bus = bus or self.bus

        def ticks(deg: float, motor: MotorConfig) -> int:
            return max(1, round(deg * (motor.resolution - 1) / 360))

        steps = self.safety.max_step_deg
        max_step = {m.name: ticks(steps[bus.joint_name(m.name)] if isinstance(steps, dict) else steps, m)
                    for m in bus.motors}
        rest = None
        if self.rest_pose is not None:
            goal = normalizer.goal(np.array([self.rest_pose[name] for name in self.motor_names]))
            rest = {m.name: goal[bus.joint_name(m.name)] for m in bus.motors}
        return SafetyConfig(max_step_ticks=max_step, error_window_s=self.safety.error_window_s,
                            reaction=self.safety.reaction, watchdog_ms=self.safety.watchdog_ms, rest_pose=rest)

    def bus_limits(self, normalizer: JointNormalizer, bus: BusConfig) -> dict[str, tuple[int, int]]:
        """Calibrated limits of one bus's joints, keyed by the bus's motor names (what its SafetyLayer takes)."""
        limits = normalizer.limits
        return {m: limits[bus.joint_name(m)] for m in bus.motor_names}


def robot_file(name_or_path: str | Path) -> Path:
    """The robot file a `--robot` argument means: an existing file, or the name of a bundled preset."""
    path = Path(name_or_path).expanduser()
    if path.is_file() or path.suffix or os.sep in str(name_or_path):
        return path
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    raise RobotConfigError(f"no robot file {str(name_or_path)!r} (and no preset of that name; presets: "
                           f"{', '.join(presets())})")


def presets() -> list[str]:
    """Names of the bundled robot files (`edge run --robot koch`)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_robot_config(path: str | Path) -> RobotConfig:
    """Read and validate a robot file (or a preset name); relative paths are resolved against the file's folder."""
    path = robot_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RobotConfigError(f"cannot read robot file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RobotConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return robot_config_from_dict(data, base_dir=path.parent)
    except RobotConfigError as exc:
        raise RobotConfigError(f"{path}: {exc}") from None


def robot_config_from_dict(data: Any, base_dir: str | Path = ".") -> RobotConfig:
    """Build a RobotConfig from decoded YAML; relative paths (calibration, video files) are taken from `base_dir`."""
    base_dir = Path(base_dir)
    top = _Section(data, "")
    common = ("control_hz", "safety")
    optional = ("rest_pose", "features", "cameras")
    if "buses" in top.data:
        top.check_keys(required=("buses", *common), optional=optional)
        raw = _Section(top.get("buses"), "buses")
        if not raw.data:
            raise RobotConfigError("field 'buses': expected a mapping of bus name -> {port, baudrate, calibration, "
                                   "motors}")
        buses = tuple(_bus(_Section(raw.get(name), raw.name(str(name))), str(name), base_dir) for name in raw.data)
    else:
        top.check_keys(required=("port", "baudrate", "motors", "calibration", *common), optional=optional)
        buses = (_bus(top, "", base_dir),)
    joints = [bus.joint_name(m.name) for bus in buses for m in bus.motors]
    ports = [bus.port for bus in buses]
    if len(set(ports)) != len(ports):
        raise RobotConfigError(f"field 'buses': two buses share a port ({', '.join(ports)})")
    if len(set(joints)) != len(joints):
        raise RobotConfigError(f"field 'buses': joint names collide ({', '.join(joints)})")
    control_hz = top.number("control_hz", positive=True)
    limits = _safety(_Section(top.get("safety"), "safety"), joints)

    rest_pose = None
    motors = {bus.joint_name(m.name): m for bus in buses for m in bus.motors}
    if top.get("rest_pose") is not None:
        rest = _Section(top.get("rest_pose"), "rest_pose")
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
        feats = _Section(top.get("features"), "features")
        feats.check_keys(optional=("state", "action"))
        features = FeatureNames(**{k: feats.string(k) for k in ("state", "action") if k in feats.data})

    cameras: dict[str, CameraConfig] = {}
    if top.get("cameras") is not None:
        section = _Section(top.get("cameras"), "cameras")
        for feature in section.data:
            if feature in (features.state, features.action) or not isinstance(feature, str):
                raise RobotConfigError(f"field 'cameras.{feature}': not a usable image feature name")
            cameras[feature] = _camera(_Section(section.get(feature), section.name(feature)), base_dir)

    return RobotConfig(buses, control_hz, limits, rest_pose, features, cameras)


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
            entry = {"type": cam.type, "source": relative(Path(cam.source)) if cam.kind == "file" else cam.source,
                     "width": cam.width, "height": cam.height, "rotation": cam.rotation}
            entry.update({k: getattr(cam, k) for k in ("fps", "fourcc", "max_age_ms") if getattr(cam, k) is not None})
            data["cameras"][feature] = entry
    return data


def save_robot_config(config: RobotConfig, path: str | Path) -> None:
    """Write a robot file that `load_robot_config` reads back to an equal RobotConfig."""
    path = Path(path)
    text = yaml.safe_dump(robot_config_to_dict(config, base_dir=path.parent), sort_keys=False)
    path.write_text(text, encoding="utf-8")


def _bus(sec: _Section, name: str, base_dir: Path) -> BusConfig:
    """One bus: port, baud rate, calibration file and motor list (top level of a single-bus file, or `buses.<name>`)."""
    if name:
        sec.check_keys(required=("port", "baudrate", "motors", "calibration"))
    port = sec.string("port")
    baudrate = sec.integer("baudrate")
    if baudrate not in BAUDRATES:
        raise RobotConfigError(f"field '{sec.name('baudrate')}': {baudrate} is not a Dynamixel X baud rate {BAUDRATES}")
    joints, shadows = _motors(sec.get("motors"), sec.name("motors"))
    calibration = (base_dir / Path(sec.string("calibration")).expanduser()).resolve()
    return BusConfig(name, port, baudrate, joints, calibration, shadows)


def _safety(safety: _Section, joints: list[str]) -> SafetyLimits:
    """The safety section; a per-joint max_step_deg must name every joint."""
    safety.check_keys(required=("max_step_deg", "error_window_s", "reaction", "watchdog_ms"))
    reaction = safety.string("reaction")
    if reaction not in REACTIONS:
        raise RobotConfigError(f"field 'safety.reaction': {reaction!r} is not one of {', '.join(REACTIONS)}")
    raw_step = safety.get("max_step_deg")
    if isinstance(raw_step, dict):
        step = _Section(raw_step, "safety.max_step_deg")
        step.check_keys(required=tuple(joints))
        max_step: float | dict[str, float] = {n: step.number(n, positive=True) for n in joints}
    else:
        max_step = safety.number("max_step_deg", positive=True)
    watchdog_ms = None if safety.get("watchdog_ms") is None else safety.integer("watchdog_ms")
    if watchdog_ms is not None and not WATCHDOG_MS[0] <= watchdog_ms <= WATCHDOG_MS[1]:
        raise RobotConfigError(f"field 'safety.watchdog_ms': must be in {WATCHDOG_MS[0]}..{WATCHDOG_MS[1]} "
                               f"(the servo's Bus Watchdog, 20 ms units) or null for off, got {watchdog_ms}")
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
        sec = _Section(entry, where)
        shadow = isinstance(entry, dict) and "shadow_of" in entry
        if shadow:
            sec.check_keys(required=("name", "id", "model", "shadow_of"))
        else:
            sec.check_keys(required=("name", "id", "model", "norm_mode"), optional=("full_turn", *SETUP_REGISTERS))
        name = sec.string("name")
        motor_id = sec.integer("id")
        if not 0 <= motor_id <= 252:
            raise RobotConfigError(f"field '{where}.id': must be in 0..252, got {motor_id}")
        model = sec.string("model")
        if model not in MODEL_RESOLUTION:
            raise RobotConfigError(
                f"field '{where}.model': unknown model {model!r} (known: {', '.join(MODEL_RESOLUTION)})")
        for other in motors:
            if other.name == name:
                raise RobotConfigError(f"field '{where}.name': duplicate motor name {name!r}")
            if other.id == motor_id:
                raise RobotConfigError(f"field '{where}.id': id {motor_id} already used by '{other.name}'")
        if shadow:
            motors.append(MotorConfig(name, motor_id, model, None, shadow_of=sec.string("shadow_of")))
            continue
        try:
            mode = NormMode(sec.get("norm_mode"))
        except ValueError:
            raise RobotConfigError(
                f"field '{where}.norm_mode': unknown mode {sec.get('norm_mode')!r} "
                f"(expected {', '.join(m.value for m in NormMode)})") from None
        full_turn = sec.get("full_turn", False)
        if not isinstance(full_turn, bool):
            raise RobotConfigError(f"field '{where}.full_turn': expected true or false, got {full_turn!r}")
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
            raise RobotConfigError(f"field '{where}': {m.shadow_of!r} is not a joint on this bus")
        if primary.model != m.model:
            raise RobotConfigError(f"field '{where}': a shadow must be the same model as its joint "
                                   f"({m.model} vs {primary.model})")
    if not joints:
        raise RobotConfigError(f"field '{path}': no joints (every motor is a shadow)")
    return joints, shadows


def _setup(sec: _Section, model_name: str) -> dict[str, int]:
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
                raise RobotConfigError(f"field '{sec.name(key)}': unknown mode {mode!r} "
                                       f"(known: {', '.join(tables.OPERATING_MODES)})")
            if tables.OPERATING_MODES[mode] not in model.operating_modes:
                raise RobotConfigError(f"field '{sec.name(key)}': {model_name} has no {mode} mode")
            if mode not in POSITION_MODES:
                raise RobotConfigError(f"field '{sec.name(key)}': {mode!r} does not follow Goal_Position, which is "
                                       f"how the policy drives a joint (use {', '.join(POSITION_MODES)})")
            setup[register] = tables.OPERATING_MODES[mode]
            continue
        value = sec.integer(key)
        reg = model.registers[register]
        if not reg.lo <= value <= reg.hi:
            raise RobotConfigError(f"field '{sec.name(key)}': {value} outside {reg.lo}..{reg.hi} ({register})")
        setup[register] = value
    return setup


def _camera(sec: _Section, base_dir: Path) -> CameraConfig:
    """One camera entry; a video file source must exist (resolved against the robot file's folder)."""
    sec.check_keys(required=("type", "source", "width", "height"),
                   optional=("fps", "fourcc", "rotation", "max_age_ms"))
    kind = sec.string("type")
    if kind not in CAMERA_TYPES:
        raise RobotConfigError(f"field '{sec.name('type')}': unknown camera type {kind!r} "
                               f"(known: {', '.join(CAMERA_TYPES)})")
    source = sec.get("source")
    if isinstance(source, bool) or not isinstance(source, (int, str)) or source == "":
        raise RobotConfigError(f"field '{sec.name('source')}': expected a device index, a /dev/video* path, a video "
                               f"file or a GStreamer pipeline, got {source!r}")
    if isinstance(source, int) and source < 0:
        raise RobotConfigError(f"field '{sec.name('source')}': device index must be >= 0, got {source}")
    width, height = sec.integer("width"), sec.integer("height")
    for key, value in (("width", width), ("height", height)):
        if value <= 0:
            raise RobotConfigError(f"field '{sec.name(key)}': must be positive, got {value}")
    fps = None if sec.get("fps") is None else sec.number("fps", positive=True)
    fourcc = sec.get("fourcc")
    if fourcc is not None and (not isinstance(fourcc, str) or len(fourcc) != 4):
        raise RobotConfigError(f"field '{sec.name('fourcc')}': expected 4 characters such as MJPG, got {fourcc!r}")
    rotation = sec.get("rotation", 0)
    if isinstance(rotation, bool) or rotation not in ROTATIONS:
        raise RobotConfigError(f"field '{sec.name('rotation')}': expected one of {ROTATIONS}, got {rotation!r}")
    max_age = None if sec.get("max_age_ms") is None else sec.number("max_age_ms", positive=True)
    camera = CameraConfig(source, width, height, fps, fourcc, rotation, max_age, kind)
    if camera.kind == "file":
        path = (base_dir / Path(str(source)).expanduser()).resolve()
        if not any(p.is_file() for p in _first_files(path)):
            raise RobotConfigError(f"field '{sec.name('source')}': no video file (or image sequence) {path}")
        camera = replace(camera, source=str(path))
    return camera


def _first_files(path: Path) -> list[Path]:
    """The file itself, or the first frames of an image sequence such as `frame_%03d.jpg` (OpenCV numbers from 0
    or 1)."""
    if "%" not in path.name:
        return [path]
    try:
        return [path.parent / (path.name % i) for i in (0, 1)]
    except (TypeError, ValueError):
        return [path]


class _Section:
    """A mapping from the YAML with typed getters whose errors carry the dotted field path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise RobotConfigError(f"field '{path or '<top level>'}': expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        """Dotted path of `key` inside this section."""
        return f"{self.path}.{key}" if self.path else key

    def check_keys(self, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
        """Missing required keys and unknown keys (typos) are both errors."""
        for key in required:
            if key not in self.data:
                raise RobotConfigError(f"field '{self.name(key)}' is missing")
        unknown = [str(k) for k in self.data if k not in required and k not in optional]
        if unknown:
            raise RobotConfigError(f"unknown field(s) {', '.join(repr(self.name(k)) for k in unknown)}")

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value, or `default`."""
        return self.data.get(key, default)

    def string(self, key: str) -> str:
        """A non-empty string."""
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise RobotConfigError(f"field '{self.name(key)}': expected a non-empty string, got {value!r}")
        return value

    def integer(self, key: str) -> int:
        """An integer (booleans refused)."""
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RobotConfigError(f"field '{self.name(key)}': expected an integer, got {value!r}")
        return value

    def number(self, key: str, positive: bool = False) -> float:
        """A finite number, optionally > 0."""
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RobotConfigError(f"field '{self.name(key)}': expected a number, got {value!r}")
        if positive and value <= 0:
            raise RobotConfigError(f"field '{self.name(key)}': must be positive, got {value}")
        return float(value)
