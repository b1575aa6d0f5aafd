"""The robot file: one YAML per arm (bus, motors, calibration file, control rate, safety, feature names).

Everything the runtime needs to talk to an arm and to map its joints onto a policy's features lives here, so the
same policy package runs on two arms that differ only by their robot files. Validation happens on load and every
error names the field (`motors[2].norm_mode`, `safety.reaction`, ...), so a typo never reaches the servos.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from calibration.calibration_file import (
    MODEL_RESOLUTION,
    MotorCalibration,
    NormMode,
    load_calibration,
)
from calibration.errors import CalibrationError, RobotConfigError
from calibration.normalize import JointNormalizer

if TYPE_CHECKING:
    from firmware_bridge.safety import SafetyConfig

REACTIONS = ("hold", "torque_off")
WATCHDOG_MS = (20, 2540)  # Bus_Watchdog 1..127 in 20 ms units
BAUDRATES = (9_600, 57_600, 115_200, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 4_500_000)


@dataclass(frozen=True)
class MotorConfig:
    """One servo: `full_turn` joints (e.g. a continuous wrist roll) get the whole 0..4095 range, as LeRobot does."""

    name: str
    id: int
    model: str
    norm_mode: NormMode
    full_turn: bool = False

    @property
    def resolution(self) -> int:
        """Encoder ticks per turn."""
        return MODEL_RESOLUTION[self.model]


@dataclass(frozen=True)
class SafetyLimits:
    """Safety section in physical units; `RobotConfig.safety_config` converts it for firmware_bridge's safety layer.

    max_step_deg: largest goal change per control tick, in degrees of servo shaft (one number, or one per motor).
    error_window_s: how long bus errors may persist before `reaction` fires.
    reaction: `hold` (keep the last good goal, torque on) or `torque_off`.
    watchdog_ms: the servos' Bus Watchdog: no packet for this long stops them (None: off).
    """

    max_step_deg: float | dict[str, float]
    error_window_s: float
    reaction: str
    watchdog_ms: int | None


@dataclass(frozen=True)
class FeatureNames:
    """Policy feature names the joints feed, in motor order (LeRobot's defaults)."""

    state: str = "observation.state"
    action: str = "action"


@dataclass(frozen=True)
class RobotConfig:
    """One arm. `calibration` is absolute once loaded; the file stores it relative to the robot file."""

    port: str
    baudrate: int
    motors: tuple[MotorConfig, ...]
    calibration: Path
    control_hz: float
    safety: SafetyLimits
    rest_pose: dict[str, float] | None = None
    features: FeatureNames = field(default_factory=FeatureNames)

    @property
    def motor_names(self) -> list[str]:
        """Motor names in vector order (the order of `observation.state` and `action`)."""
        return [m.name for m in self.motors]

    def bus_motors(self) -> dict[str, tuple[int, str]]:
        """`{name: (id, model)}` as `firmware_bridge.DynamixelBus` takes it."""
        return {m.name: (m.id, m.model) for m in self.motors}

    def load_calibration(self) -> dict[str, MotorCalibration]:
        """Read the calibration file and check it describes exactly these motors with these ids."""
        calibration = load_calibration(self.calibration)
        self.check_calibration(calibration, source=str(self.calibration))
        return calibration

    def check_calibration(self, calibration: dict[str, MotorCalibration], source: str = "calibration") -> None:
        """Raise CalibrationError naming the motor if `calibration` does not match this robot's motors."""
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

    def normalizer(self, calibration: dict[str, MotorCalibration] | None = None) -> JointNormalizer:
        """The tick <-> policy-unit converter for this arm (loads the calibration file unless given one)."""
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

    def safety_config(self, normalizer: JointNormalizer) -> SafetyConfig:
        """The safety section as firmware_bridge's `SafetyConfig` (raw ticks).

        Degrees become ticks at 4095/360 (never below 1 tick); the rest pose goes through `normalizer.goal`, so
        it is clamped to the calibrated range. Use with `SafetyLayer(bus, normalizer.limits, config)`.
        """
        from firmware_bridge.safety import SafetyConfig  # calibration itself needs no bus

        def ticks(deg: float, motor: MotorConfig) -> int:
            return max(1, round(deg * (motor.resolution - 1) / 360))

        steps = self.safety.max_step_deg
        max_step = {m.name: ticks(steps[m.name] if isinstance(steps, dict) else steps, m) for m in self.motors}
        rest = None
        if self.rest_pose is not None:
            rest = normalizer.goal(np.array([self.rest_pose[name] for name in self.motor_names]))
        return SafetyConfig(max_step_ticks=max_step, error_window_s=self.safety.error_window_s,
                            reaction=self.safety.reaction, watchdog_ms=self.safety.watchdog_ms, rest_pose=rest)


def load_robot_config(path: str | Path) -> RobotConfig:
    """Read and validate a robot file; the calibration path is resolved against the file's directory."""
    path = Path(path)
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
    """Build a RobotConfig from decoded YAML; relative calibration paths are taken from `base_dir`."""
    top = _Section(data, "")
    top.check_keys(required=("port", "baudrate", "motors", "calibration", "control_hz", "safety"),
                   optional=("rest_pose", "features"))
    port = top.string("port")
    baudrate = top.integer("baudrate")
    if baudrate not in BAUDRATES:
        raise RobotConfigError(f"field 'baudrate': {baudrate} is not a Dynamixel X baud rate {BAUDRATES}")
    motors = _motors(top.get("motors"))
    names = [m.name for m in motors]
    calibration = (Path(base_dir) / top.string("calibration")).resolve()
    control_hz = top.number("control_hz", positive=True)

    safety = _Section(top.get("safety"), "safety")
    safety.check_keys(required=("max_step_deg", "error_window_s", "reaction", "watchdog_ms"))
    reaction = safety.string("reaction")
    if reaction not in REACTIONS:
        raise RobotConfigError(f"field 'safety.reaction': {reaction!r} is not one of {', '.join(REACTIONS)}")
    raw_step = safety.get("max_step_deg")
    if isinstance(raw_step, dict):
        step = _Section(raw_step, "safety.max_step_deg")
        step.check_keys(required=tuple(names))
        max_step: float | dict[str, float] = {n: step.number(n, positive=True) for n in names}
    else:
        max_step = safety.number("max_step_deg", positive=True)
    watchdog_ms = None if safety.get("watchdog_ms") is None else safety.integer("watchdog_ms")
    if watchdog_ms is not None and not WATCHDOG_MS[0] <= watchdog_ms <= WATCHDOG_MS[1]:
        raise RobotConfigError(f"field 'safety.watchdog_ms': must be in {WATCHDOG_MS[0]}..{WATCHDOG_MS[1]} "
                               f"(the servo's Bus Watchdog, 20 ms units) or null for off, got {watchdog_ms}")
    limits = SafetyLimits(max_step, safety.number("error_window_s", positive=True), reaction, watchdog_ms)

    rest_pose = None
    if top.get("rest_pose") is not None:
        rest = _Section(top.get("rest_pose"), "rest_pose")
        rest.check_keys(required=tuple(names))
        rest_pose = {n: rest.number(n) for n in names}
        for m in motors:
            lo, hi = {NormMode.RANGE_0_100: (0, 100), NormMode.RANGE_M100_100: (-100, 100)}.get(
                m.norm_mode, (-180, 180))
            if not lo <= rest_pose[m.name] <= hi:
                raise RobotConfigError(
                    f"field 'rest_pose.{m.name}': {rest_pose[m.name]} outside {lo}..{hi} ({m.norm_mode.value})")

    features = FeatureNames()
    if top.get("features") is not None:
        feats = _Section(top.get("features"), "features")
        feats.check_keys(optional=("state", "action"))
        features = FeatureNames(**{k: feats.string(k) for k in ("state", "action") if k in feats.data})

    return RobotConfig(port, baudrate, motors, calibration, control_hz, limits, rest_pose, features)


def robot_config_to_dict(config: RobotConfig, base_dir: str | Path = ".") -> dict[str, Any]:
    """The YAML-ready form, with the calibration path written relative to `base_dir` (the robot file's folder)."""
    calibration = Path(os.path.relpath(Path(config.calibration).resolve(), Path(base_dir).resolve()))
    motors = []
    for m in config.motors:
        entry: dict[str, Any] = {"name": m.name, "id": m.id, "model": m.model, "norm_mode": m.norm_mode.value}
        if m.full_turn:
            entry["full_turn"] = True
        motors.append(entry)
    data: dict[str, Any] = {
        "port": config.port,
        "baudrate": config.baudrate,
        "control_hz": config.control_hz,
        "calibration": calibration.as_posix(),
        "motors": motors,
        "safety": {
            "max_step_deg": config.safety.max_step_deg,
            "error_window_s": config.safety.error_window_s,
            "reaction": config.safety.reaction,
            "watchdog_ms": config.safety.watchdog_ms,
        },
        "features": {"state": config.features.state, "action": config.features.action},
    }
    if config.rest_pose is not None:
        data["rest_pose"] = dict(config.rest_pose)
    return data


def save_robot_config(config: RobotConfig, path: str | Path) -> None:
    """Write a robot file that `load_robot_config` reads back to an equal RobotConfig."""
    path = Path(path)
    text = yaml.safe_dump(robot_config_to_dict(config, base_dir=path.parent), sort_keys=False)
    path.write_text(text, encoding="utf-8")


def _motors(raw: Any) -> tuple[MotorConfig, ...]:
    """Parse and check the motor list: unique names and ids, known models and modes."""
    if not isinstance(raw, list) or not raw:
        raise RobotConfigError("field 'motors': expected a non-empty list of {name, id, model, norm_mode}")
    motors: list[MotorConfig] = []
    for i, entry in enumerate(raw):
        where = f"motors[{i}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where = f"motors[{i}] ({entry['name']})"
        sec = _Section(entry, where)
        sec.check_keys(required=("name", "id", "model", "norm_mode"), optional=("full_turn",))
        name = sec.string("name")
        motor_id = sec.integer("id")
        if not 0 <= motor_id <= 252:
            raise RobotConfigError(f"field '{where}.id': must be in 0..252, got {motor_id}")
        model = sec.string("model")
        if model not in MODEL_RESOLUTION:
            raise RobotConfigError(
                f"field '{where}.model': unknown model {model!r} (known: {', '.join(MODEL_RESOLUTION)})")
        try:
            mode = NormMode(sec.get("norm_mode"))
        except ValueError:
            raise RobotConfigError(
                f"field '{where}.norm_mode': unknown mode {sec.get('norm_mode')!r} "
                f"(expected {', '.join(m.value for m in NormMode)})") from None
        full_turn = sec.get("full_turn", False)
        if not isinstance(full_turn, bool):
            raise RobotConfigError(f"field '{where}.full_turn': expected true or false, got {full_turn!r}")
        for other in motors:
            if other.name == name:
                raise RobotConfigError(f"field '{where}.name': duplicate motor name {name!r}")
            if other.id == motor_id:
                raise RobotConfigError(f"field '{where}.id': id {motor_id} already used by '{other.name}'")
        motors.append(MotorConfig(name, motor_id, model, mode, full_turn))
    return tuple(motors)


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
