"""The robot file's schema: buses, motors and their setup, cameras, rate, safety and features as dataclasses.

Everything the runtime needs to talk to a robot and to map its joints and cameras onto a policy's features lives
here, so the same policy package runs on two robots that differ only by their robot files. reader.py reads and
checks the YAML into these classes; presets.py finds the bundled presets (`koch`, `omx`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calibration.calibration_file import MotorCalibration, NormMode, load_calibration
from calibration.errors import CalibrationError
from calibration.joint_normalizer import JointNormalizer
from calibration.lerobot_paths import joint_feature_names
from edge.errors import RobotConfigError
from firmware_bridge import tables

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
        return tables.model(self.model).resolution

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
    calibration: Path | None  # None: a typed robot (LeRobot's folder) that was given no id
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

    @property
    def factory_calibrated(self) -> bool:
        """Every joint takes the whole turn (LeRobot's OMX follower): the calibration is the factory one, homing 0
        and 0..4095, so there is nothing to measure."""
        return all(m.full_turn for m in self.motors)

    def factory_calibration(self) -> dict[str, MotorCalibration]:
        """What LeRobot's OMX follower writes at its calibrate(): drive mode 0, homing 0, the whole turn."""
        return {m.name: MotorCalibration(m.id, 0, 0, 0, m.resolution - 1) for m in self.motors}

    def load_calibration(self) -> dict[str, MotorCalibration]:
        """Read this bus's calibration file and check it describes exactly its joints with their ids."""
        if self.calibration is None:
            raise CalibrationError("no calibration file: this robot file has a `type:` but no `id:`; name the arm "
                                   "with --id NAME (LeRobot's --robot.id), or pass --calibration FILE")
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
    """One camera feeding one image feature: what every camera type has (LeRobot's CameraConfig: type, width, height,
    fps), checked here, and the type's own keys (`options`, e.g. opencv's source, fourcc, rotation), which the
    camera class of `type` checks when it is built (edge/robot/cameras.py `CAMERAS`).

    width/height: the frame the policy gets; fps: None where the source says it; max_age_ms: an older frame at a
    tick is a camera fault (None: DEFAULT_FRAME_PERIODS frame periods); base_dir: the robot file's folder, against
    which a relative path among the options is resolved.
    """

    type: str
    width: int
    height: int
    fps: float | None = None
    max_age_ms: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = Path(".")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The delivered frame: (height, width, 3), uint8 RGB."""
        return (self.height, self.width, 3)


@dataclass(frozen=True)
class SafetyLimits:
    """Safety section in physical units; `RobotConfig.safety_config` converts it for firmware_bridge's safety layer.

    max_step_deg: largest goal change per control tick at the file's control_hz, in degrees of servo shaft (one
        number, or one per joint); it is a speed, max_step_deg x control_hz degrees a second, so a loop run at
        another rate gets it scaled per tick (`RobotConfig.safety_config`'s loop_hz).
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
    robot_type: str | None = None  # LeRobot's robot type (`koch_follower`), which names its calibration folder
    robot_id: str | None = None    # LeRobot's robot id (`--id`), which names its calibration file

    @property
    def motors(self) -> tuple[MotorConfig, ...]:
        """Every joint in vector order, named as in the vector (`left_gripper` on a bimanual robot)."""
        return tuple(replace(m, name=bus.joint_name(m.name)) for bus in self.buses for m in bus.motors)

    @property
    def motor_names(self) -> list[str]:
        """Joint names in vector order (the order of `observation.state` and `action`)."""
        return [m.name for m in self.motors]

    @property
    def position_names(self) -> list[str]:
        """LeRobot's names of the joint vector's entries (`shoulder_pan.pos`, `left_gripper.pos`): the `names` of
        `observation.state` and `action` in a LeRobot dataset recorded on this robot (the one naming function:
        calibration/lerobot_paths.py `joint_feature_name`)."""
        return joint_feature_names(self.motor_names)

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
    def calibration(self) -> Path | None:
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
