"""What one bus's safety layer is given: the robot file's safety section in ticks, and the calibrated limits.

The robot file speaks degrees, policy units and joint names; firmware_bridge's `SafetyLayer` speaks raw ticks and
the bus's motor names. The conversion needs the calibration (the tick <-> policy-unit converter) and the rate the
loop really runs at, so it happens here, where the robot opens its buses, not in the robot file's schema.
"""

from __future__ import annotations

import numpy as np

from calibration import JointNormalizer
from edge.robot.robot_file import BusConfig, RobotConfig
from firmware_bridge.safety import SafetyConfig


def safety_config(robot: RobotConfig, normalizer: JointNormalizer, bus: BusConfig | None = None,
                  loop_hz: float | None = None) -> SafetyConfig:
    """The safety section for one bus (default: the only one) as firmware_bridge's `SafetyConfig` (raw ticks,
    keyed by the bus's motor names). `loop_hz`: the rate the loop really runs at; the step cap per tick is
    max_step_deg x control_hz / loop_hz, the same speed a second at any rate (None: control_hz).

    Degrees become ticks at 4095/360 (never below 1 tick); the rest pose goes through `normalizer.goal`, so
    it is clamped to the calibrated range. Use with `SafetyLayer(bus, bus_limits(...), safety_config(...))`.
    """
    bus = bus or robot.bus
    scale = 1.0 if loop_hz is None else robot.control_hz / loop_hz

    def ticks(deg: float, resolution: int) -> int:
        return max(1, round(deg * scale * (resolution - 1) / 360))

    steps = robot.safety.max_step_deg
    max_step = {m.name: ticks(steps[bus.joint_name(m.name)] if isinstance(steps, dict) else steps, m.resolution)
                for m in bus.motors}
    rest = None
    if robot.rest_pose is not None:
        goal = normalizer.goal(np.array([robot.rest_pose[name] for name in robot.motor_names]))
        rest = {m.name: goal[bus.joint_name(m.name)] for m in bus.motors}
    return SafetyConfig(max_step_ticks=max_step, error_window_s=robot.safety.error_window_s,
                        reaction=robot.safety.reaction, watchdog_ms=robot.safety.watchdog_ms, rest_pose=rest)


def bus_limits(normalizer: JointNormalizer, bus: BusConfig) -> dict[str, tuple[int, int]]:
    """Calibrated limits of one bus's joints, keyed by the bus's motor names (what its SafetyLayer takes)."""
    limits = normalizer.limits
    return {m: limits[bus.joint_name(m)] for m in bus.motor_names}
