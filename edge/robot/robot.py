"""One robot as the control loop sees it: observations in policy units in, actions through the safety layers out.

Composes the robot file (calibration/), one Dynamixel bus and safety layer per bus (firmware_bridge/) and the
cameras (edge/robot/cameras.py). Nothing reaches a servo without passing `SafetyLayer.step`: limits, step cap, NaN.
Connecting checks before it writes: cameras deliver frames of the configured size, every servo answers with its
model, and the servos hold the calibration file's values (or `write_calibration` puts them there); only then the
per-servo setup is written torque-off, read back, and torque comes on. A refusal writes nothing to any servo.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from calibration import JointNormalizer
from calibration.lerobot_paths import joint_feature_names
from calibration.procedure import apply_file_calibration, check_servo_calibration
from edge.robot.bus_safety import bus_limits, safety_config
from edge.robot.cameras import Camera, OpenCVCamera
from edge.robot.joint_names import JointOrder
from edge.robot.robot_file import BusConfig, MotorConfig, RobotConfig
from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.safety import SafetyLayer
from firmware_bridge.safety.config import INTERVENTIONS


class _Arm:
    """One bus of the robot: its config, bus, safety layer and where its joints sit in the vector."""

    def __init__(self, config: BusConfig, bus: DynamixelBus, safety: SafetyLayer) -> None:
        self.config, self.bus, self.safety = config, bus, safety
        self.pairs = [(m, config.joint_name(m)) for m in config.motor_names]  # (name on the bus, joint name)
        self.setup: dict[str, dict[str, int]] = {}  # what configure() read back, by bus motor name

    @property
    def label(self) -> str:
        """`bus left`, or `bus` on a single-bus robot."""
        return f"bus {self.config.name}" if self.config.name else "bus"


@dataclass
class Robot:
    """Connects on `__enter__` (checks, setup, torque on, goal = present position), always releases on `__exit__`.

    `cameras` default to the robot file's (an OpenCVCamera each); pass a mapping to feed image features from
    elsewhere (the demo's simulated camera). `write_calibration` writes the calibration file's values to the
    servos instead of refusing a mismatch.
    """

    config: RobotConfig
    cameras: Mapping[str, Camera] | None = None
    static_features: Mapping[str, np.ndarray] = field(default_factory=dict)
    bus_timeout_slack_ms: float = 3.0  # extra reply time; the in-process emulator needs more on a busy machine
    write_calibration: bool = False
    joint_order: JointOrder | None = None  # the policy's joint order when it differs (edge/robot/joint_names.py)
    loop_hz: float | None = None  # the loop's rate, if not the file's control_hz: the safety step cap is per second

    def __post_init__(self) -> None:
        self._calibration = {bus.name: bus.load_calibration() for bus in self.config.buses}
        merged = {bus.joint_name(m): c for bus in self.config.buses for m, c in self._calibration[bus.name].items()}
        self.normalizer: JointNormalizer = self.config.normalizer(merged)
        self.arms = []
        for bc in self.config.buses:
            bus = DynamixelBus(bc.port, bc.bus_motors(), bc.baudrate, timeout_slack_ms=self.bus_timeout_slack_ms)
            safety = SafetyLayer(bus, bus_limits(self.normalizer, bc),
                                 safety_config(self.config, self.normalizer, bc, self.loop_hz),
                                 watch=[s.name for s in bc.shadows])
            self.arms.append(_Arm(bc, bus, safety))
        if self.cameras is None:
            self.cameras = {name: OpenCVCamera(name, cc) for name, cc in self.config.cameras.items()}
        self.motors = list(self.normalizer.motors)
        self.frame_age_ms = {name: 0.0 for name in self.cameras}
        self.tripped: str | None = None  # what made a safety layer react (`bus left: ...` with several buses)
        self._sent: dict[str, float] = {}
        self._present = np.zeros(len(self.motors), np.float32)
        self._written = False  # setup has begun writing to the servos
        self._opened = ExitStack()  # what __enter__ opened, closed in reverse by __exit__

    @property
    def policy_joints(self) -> list[MotorConfig]:
        """The joints in the order `read` gives the state and `write` takes actions: the policy's when the dataset's
        names reorder them (joint_order), else the robot file's."""
        motors = list(self.config.motors)
        order = self.joint_order
        return motors if order is None or order.identity else [motors[int(i)] for i in order.to_policy]

    @property
    def position_names(self) -> list[str]:
        """LeRobot's `<motor>.pos` names of `policy_joints`: what a recorded dataset or the live view labels."""
        return joint_feature_names(m.name for m in self.policy_joints)

    @property
    def bus(self) -> DynamixelBus:
        """The bus of a single-bus robot (RobotConfigError naming the buses otherwise)."""
        return self._only_arm().bus

    @property
    def safety(self) -> SafetyLayer:
        """The safety layer of a single-bus robot (RobotConfigError naming the buses otherwise)."""
        return self._only_arm().safety

    def _only_arm(self) -> _Arm:
        self.config.bus  # refuses a multi-bus robot, naming its buses
        return self.arms[0]

    def __enter__(self) -> Robot:
        """Open in order (cameras, buses, checks and setup, safety layers); a failure closes what was opened.

        Each closing step is registered before its opening step runs, and nothing but returning follows the last
        one, so a signal (SIGINT/SIGTERM/SIGHUP raise in this thread) at any moment still closes all that opened:
        `with` calls no __exit__ for an __enter__ that raised."""
        opened = ExitStack()
        try:
            for cam in self.cameras.values():
                opened.enter_context(cam)
            for arm in self.arms:
                opened.callback(self._release, arm)  # safe before connect: a bus never opened releases nothing
                arm.bus.connect()
            if not self.write_calibration:
                for arm in self.arms:
                    check_servo_calibration(arm.bus, arm.config, self._calibration[arm.config.name])
            self._written = True
            for arm in self.arms:
                if self.write_calibration:
                    apply_file_calibration(arm.bus, arm.config, self._calibration[arm.config.name])
                arm.setup = arm.bus.configure(arm.config.servo_setup())
            for arm in self.arms:
                opened.callback(arm.safety.shutdown)  # once only, also for a layer whose start was interrupted
                arm.safety.__enter__()
            self._sent = {joint: arm.safety.present[m] for arm in self.arms for m, joint in arm.pairs}
            self._present = self.normalizer.observation(self._sent)
        except BaseException:
            opened.close()
            raise
        self._opened = opened
        return self

    def __exit__(self, *exc: object) -> None:
        """Close each safety layer, bus and camera exactly once, in reverse order of opening."""
        opened, self._opened = self._opened, ExitStack()
        opened.close()

    def _release(self, arm: _Arm) -> None:
        """Release one bus's port. Torque is its safety layer's call once that ran (off, or on to hold); before,
        torque goes off only if setup had begun writing (a refusal writes nothing)."""
        arm.bus.disconnect(disable_torque=self._written and not arm.safety.closed)

    def describe(self) -> str:
        """The per-servo setup in force after connect, one line per servo (printed once by `edge run`)."""
        names = {v: k for k, v in tables.OPERATING_MODES.items()}
        lines = []
        for arm in self.arms:
            bc = arm.config
            lines.append(f"{arm.label} {bc.port} at {bc.baudrate} bps:")
            software = set(arm.safety.software_limited)
            for m in bc.motors:
                regs = dict(arm.setup.get(m.name, {}))
                mode = names.get(regs.pop("Operating_Mode", -1), "?")
                limits = "software limits only" if m.name in software else "servo + software limits"
                values = " ".join(f"{r}={v}" for r, v in regs.items())
                lines.append(f"  {bc.joint_name(m.name):<22} id {m.id:<3} {m.model:<11} {mode:<18} {limits:<24} {values}")
            for s in bc.shadows:
                lines.append(f"  {bc.joint_name(s.name):<22} id {s.id:<3} {s.model:<11} shadow of {s.shadow_of} "
                             f"(Secondary_ID={arm.setup.get(s.name, {}).get('Secondary_ID')})")
        return "\n".join(lines)

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The observation dict the policy takes, and the joint positions in policy units.

        Each camera gives its latest frame at once; one older than its `max_age_s` is reported to every safety
        layer as a fault (it trips after the error window like a bus fault).
        """
        ticks = {}
        for arm in self.arms:
            present = arm.safety.observe()
            for m, joint in arm.pairs:
                ticks[joint] = present[m]
        state = self._present = self.normalizer.observation(ticks)
        if self.joint_order is not None and not self.joint_order.identity:
            state = state[self.joint_order.to_policy]  # the policy's (dataset's) joint order
        obs = {self.config.features.state: state, **self.static_features}
        for name, cam in self.cameras.items():
            frame, stamp = cam.latest()
            age = time.monotonic() - stamp
            self.frame_age_ms[name] = age * 1e3
            problem = None if age <= cam.max_age_s else f"no new frame for {age * 1e3:.0f} ms"
            for arm in self.arms:
                arm.safety.report(f"camera {name}", problem)
            obs[name] = frame
        self._propagate_trip()
        return obs, state

    def present_joints(self) -> np.ndarray:
        """Joint positions of the latest `read()` (policy units): what a simulated camera draws the arm at."""
        return self._present

    def write(self, action: np.ndarray | None) -> np.ndarray:
        """Command an action (policy units, the policy's joint order) through the safety layers; None re-sends the
        last goal (keeps the bus watchdog fed while the first chunk is computed). Returns the goal sent, policy
        units, in the order `read` gives the state."""
        goal: Mapping[str, float] = self._sent
        mapped = self.joint_order is not None and not self.joint_order.identity
        if action is not None:
            action = np.asarray(action, dtype=np.float64)
            if mapped:
                action = action[self.joint_order.to_robot]
            finite = np.isfinite(action)  # non-finite entries go on as NaN: the safety layer rejects and counts them
            ticks = self.normalizer.policy_to_ticks(np.where(finite, action, 0.0)).astype(np.float64)
            goal = dict(zip(self.motors, np.where(finite, ticks, np.nan).tolist()))
        sent = {}
        for arm in self.arms:
            written = arm.safety.step({m: goal[joint] for m, joint in arm.pairs})
            for m, joint in arm.pairs:
                sent[joint] = written[m]
        self._sent = sent
        self._propagate_trip()
        commanded = self.normalizer.ticks_to_policy([sent[m] for m in self.motors]).astype(np.float32)
        return commanded[self.joint_order.to_policy] if mapped else commanded

    def _propagate_trip(self) -> None:
        """One bus's reaction stops every arm: the others take theirs too, and the first cause is kept."""
        if self.tripped is not None:
            return
        for arm in self.arms:
            if arm.safety.tripped is not None:
                self.tripped = f"{arm.label}: {arm.safety.tripped}" if arm.config.name else arm.safety.tripped
                for other in self.arms:
                    other.safety.trip(self.tripped)
                return

    @property
    def bus_errors(self) -> int:
        return sum(a.safety.counters.comm_errors + a.safety.counters.hardware_errors for a in self.arms)

    @property
    def safety_interventions(self) -> int:
        """The summary's "safety interventions": every counter of INTERVENTIONS, summed over the buses."""
        return sum(getattr(arm.safety.counters, name) for arm in self.arms for name in INTERVENTIONS)

    def safety_breakdown(self) -> list[str]:
        """One line per non-zero intervention counter, saying what it counts (printed after the summary)."""
        counts = {name: sum(getattr(arm.safety.counters, name) for arm in self.arms) for name in INTERVENTIONS}
        return [f"{count:>6} {name}: {INTERVENTIONS[name]}" for name, count in counts.items() if count]
