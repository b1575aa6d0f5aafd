"""One robot as the control loop sees it: observations in policy units in, actions through the safety layers out.

Composes the robot file (calibration/), per bus one `MotorsBus` (a DynamixelBus unless `open_bus` builds another)
and its safety layer (firmware_bridge/), and the cameras (edge/robot/cameras.py, built by type). Nothing reaches a
servo without passing `SafetyLayer.step`: limits, step cap, NaN. Connecting checks before it writes: cameras
deliver frames of the configured size, every servo answers with its model, and the servos hold the calibration
file's values (or `write_calibration` puts them there); only then the per-servo setup is written torque-off, read
back, and torque comes on. A refusal writes nothing to any servo.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Callable, Mapping, Protocol

import numpy as np

from calibration import JointNormalizer
from calibration.lerobot_paths import joint_feature_names
from calibration.procedure import Bus as CalibrationBus
from calibration.procedure import apply_file_calibration, check_servo_calibration
from edge.robot.bus_safety import bus_limits, safety_config
from edge.robot.cameras import Camera, open_camera
from edge.robot.joint_names import JointOrder
from edge.robot.robot_file import BusConfig, MotorConfig, RobotConfig
from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.motors_bus import MotorsBus
from firmware_bridge.safety import SafetyLayer
from firmware_bridge.safety.config import INTERVENTIONS


class RobotBus(MotorsBus, CalibrationBus, Protocol):
    """What the robot needs of one bus: the semantic calls, and the register reads with which connect checks (or
    writes) the calibration file's values on the servos."""


BusFactory = Callable[[BusConfig, float], RobotBus]  # (the robot file's bus, extra reply time in ms) -> a bus


def dynamixel_bus(config: BusConfig, timeout_slack_ms: float) -> DynamixelBus:
    """The robot file's bus as a DynamixelBus (the one implementation; the factory is the seam for another)."""
    return DynamixelBus(config.port, config.bus_motors(), config.baudrate, timeout_slack_ms=timeout_slack_ms)


class GuardedBus:
    """One bus of the robot and the safety layer guarding it: its config, bus, layer and where its joints sit in
    the robot's vector."""

    def __init__(self, config: BusConfig, bus: RobotBus, safety: SafetyLayer) -> None:
        self.config, self.bus, self.safety = config, bus, safety
        self.pairs = [(m, config.joint_name(m)) for m in config.motor_names]  # (name on the bus, joint name)
        self.setup: dict[str, dict[str, int]] = {}  # what configure() read back, by bus motor name

    @property
    def label(self) -> str:
        """`bus left`, or `bus` on a single-bus robot."""
        return f"bus {self.config.name}" if self.config.name else "bus"


class Robot:
    """Connects on `__enter__` (checks, setup, torque on, goal = present position), always releases on `__exit__`.

    `cameras` default to the robot file's (each built by its type, edge/robot/cameras.py `open_camera`); pass a
    mapping to feed image features from elsewhere (the demo's simulated camera). `write_calibration` writes the
    calibration file's values to the servos instead of refusing a mismatch. `bus_timeout_slack_ms`: extra reply
    time (the in-process emulator needs more on a busy machine); `joint_order`: the policy's joint order when it
    differs (edge/robot/joint_names.py); `loop_hz`: the loop's rate if not the file's control_hz (the safety step
    cap is per second); `open_bus`: builds each bus (default `dynamixel_bus`).
    """

    def __init__(self, config: RobotConfig, cameras: Mapping[str, Camera] | None = None,
                 static_features: Mapping[str, np.ndarray] | None = None, bus_timeout_slack_ms: float = 3.0,
                 write_calibration: bool = False, joint_order: JointOrder | None = None,
                 loop_hz: float | None = None, open_bus: BusFactory = dynamixel_bus) -> None:
        self.config = config
        self.static_features: Mapping[str, np.ndarray] = {} if static_features is None else static_features
        self.write_calibration = write_calibration
        self.joint_order = joint_order
        self._calibration = {bus.name: bus.load_calibration() for bus in config.buses}
        merged = {bus.joint_name(m): c for bus in config.buses for m, c in self._calibration[bus.name].items()}
        self.normalizer: JointNormalizer = config.normalizer(merged)
        self.buses: list[GuardedBus] = []
        for bc in config.buses:
            bus = open_bus(bc, bus_timeout_slack_ms)
            safety = SafetyLayer(bus, bus_limits(self.normalizer, bc),
                                 safety_config(config, self.normalizer, bc, loop_hz),
                                 watch=[s.name for s in bc.shadows])
            self.buses.append(GuardedBus(bc, bus, safety))
        self.cameras: Mapping[str, Camera] = (
            {name: open_camera(name, cc) for name, cc in config.cameras.items()} if cameras is None else cameras)
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
    def bus(self) -> RobotBus:
        """The bus of a single-bus robot (RobotConfigError naming the buses otherwise)."""
        return self._only_bus().bus

    @property
    def safety(self) -> SafetyLayer:
        """The safety layer of a single-bus robot (RobotConfigError naming the buses otherwise)."""
        return self._only_bus().safety

    def _only_bus(self) -> GuardedBus:
        self.config.bus  # refuses a multi-bus robot, naming its buses
        return self.buses[0]

    def __enter__(self) -> Robot:
        """Open in order (cameras, buses, checks and setup, safety layers); a failure closes what was opened.

        Each closing step is registered before its opening step runs, and nothing but returning follows the last
        one, so a signal (SIGINT/SIGTERM/SIGHUP raise in this thread) at any moment still closes all that opened:
        `with` calls no __exit__ for an __enter__ that raised."""
        opened = ExitStack()
        try:
            for cam in self.cameras.values():
                opened.enter_context(cam)
            for guarded in self.buses:
                opened.callback(self._release, guarded)  # safe before connect: a bus never opened releases nothing
                guarded.bus.connect()
            if not self.write_calibration:
                for guarded in self.buses:
                    check_servo_calibration(guarded.bus, guarded.config, self._calibration[guarded.config.name])
            self._written = True
            for guarded in self.buses:
                if self.write_calibration:
                    apply_file_calibration(guarded.bus, guarded.config, self._calibration[guarded.config.name])
                guarded.setup = guarded.bus.configure(guarded.config.servo_setup())
            for guarded in self.buses:
                opened.callback(guarded.safety.shutdown)  # once only, also for a layer whose start was interrupted
                guarded.safety.__enter__()
            self._sent = {joint: guarded.safety.present[m] for guarded in self.buses for m, joint in guarded.pairs}
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

    def _release(self, guarded: GuardedBus) -> None:
        """Release one bus's port. Torque is its safety layer's call once that ran (off, or on to hold); before,
        torque goes off only if setup had begun writing (a refusal writes nothing)."""
        guarded.bus.disconnect(disable_torque=self._written and not guarded.safety.closed)

    def describe(self) -> str:
        """The per-servo setup in force after connect, one line per servo (printed once by `edge run`)."""
        lines = []
        for guarded in self.buses:
            bc = guarded.config
            lines.append(f"{guarded.label} {bc.port} at {bc.baudrate} bps:")
            software = set(guarded.safety.software_limited)
            for m in bc.motors:
                regs = dict(guarded.setup.get(m.name, {}))
                mode = tables.MODE_NAMES.get(regs.pop("Operating_Mode", -1), "?")
                limits = "software limits only" if m.name in software else "servo + software limits"
                values = " ".join(f"{r}={v}" for r, v in regs.items())
                lines.append(f"  {bc.joint_name(m.name):<22} id {m.id:<3} {m.model:<11} {mode:<18} {limits:<24} {values}")
            for s in bc.shadows:
                lines.append(f"  {bc.joint_name(s.name):<22} id {s.id:<3} {s.model:<11} shadow of {s.shadow_of} "
                             f"(Secondary_ID={guarded.setup.get(s.name, {}).get('Secondary_ID')})")
        return "\n".join(lines)

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The observation dict the policy takes, and the joint positions in policy units.

        Each camera gives its latest frame at once; one older than its `max_age_s` is reported to every safety
        layer as a fault (it trips after the error window like a bus fault).
        """
        ticks = {}
        for guarded in self.buses:
            present = guarded.safety.observe()
            for m, joint in guarded.pairs:
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
            for guarded in self.buses:
                guarded.safety.report(f"camera {name}", problem)
            obs[name] = frame
        self._propagate_trip()
        return obs, state

    def present_joints(self) -> np.ndarray:
        """Joint positions of the latest `read()` (policy units): what a simulated camera draws the guarded at."""
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
        for guarded in self.buses:
            written = guarded.safety.step({m: goal[joint] for m, joint in guarded.pairs})
            for m, joint in guarded.pairs:
                sent[joint] = written[m]
        self._sent = sent
        self._propagate_trip()
        commanded = self.normalizer.ticks_to_policy([sent[m] for m in self.motors]).astype(np.float32)
        return commanded[self.joint_order.to_policy] if mapped else commanded

    def _propagate_trip(self) -> None:
        """One bus's reaction stops every bus: the others take theirs too, and the first cause is kept."""
        if self.tripped is not None:
            return
        for guarded in self.buses:
            if guarded.safety.tripped is not None:
                cause = guarded.safety.tripped
                self.tripped = f"{guarded.label}: {cause}" if guarded.config.name else cause
                for other in self.buses:
                    other.safety.trip(self.tripped)
                return

    def trip(self, cause: str) -> None:
        """Take every bus's configured reaction now (e.g. the policy server was lost); goals are suppressed after."""
        for guarded in self.buses:
            guarded.safety.trip(cause)
        self._propagate_trip()

    @property
    def reaction_delay_s(self) -> float | None:
        """First fault -> reaction, the longest over the buses that reacted (None: none did)."""
        delays = [a.safety.reaction_delay_s for a in self.buses if a.safety.reaction_delay_s is not None]
        return max(delays) if delays else None

    @property
    def limp_joints(self) -> list[str]:
        """Joints read back with torque off (never commanded again), by joint name."""
        return sorted(a.config.joint_name(m) for a in self.buses for m in a.safety.limp)

    @property
    def bus_errors(self) -> int:
        """Failed transactions and hardware-error alerts, all buses (read every tick)."""
        return sum(a.safety.counters.bus_errors for a in self.buses)

    @property
    def safety_interventions(self) -> int:
        """The summary's "safety interventions", all buses (read every tick)."""
        return sum(a.safety.counters.interventions for a in self.buses)

    def safety_breakdown(self) -> list[str]:
        """One line per non-zero intervention counter, saying what it counts (printed after the summary)."""
        counts = dict.fromkeys(INTERVENTIONS, 0)
        for guarded in self.buses:
            for name, count in guarded.safety.counters.breakdown().items():
                counts[name] += count
        return [f"{count:>6} {name}: {INTERVENTIONS[name]}" for name, count in counts.items() if count]
