"""The per-tick API on the emulated arm, as docs/calibration.md shows it: Present_Position -> observation.state,
action -> goal ticks through firmware_bridge's safety layer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from calib_lerobot_reference import lerobot_normalize

import firmware_bridge.bus
import firmware_bridge.emulator
from calibration import MotorCalibration, save_calibration
from edge.robot.bus_safety import safety_config
from edge.robot.robot_file import load_robot_config

safety_module = pytest.importorskip("firmware_bridge.safety")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_observation_and_goal_through_the_safety_layer(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    with firmware_bridge.emulator.ServoEmulator({m["id"]: m["model"] for m in data["motors"]}, timing=False) as emulator:
        data["port"] = emulator.port
        data["safety"]["max_step_deg"] = 360.0  # let the goal through uncapped: this test is about units
        (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
        robot = load_robot_config(tmp_path / "robot.yaml")
        calib = {m.name: MotorCalibration(m.id, 0, 0, 1000 + 10 * m.id, 3000 - 10 * m.id) for m in robot.motors}
        save_calibration(calib, robot.calibration)
        norm = robot.normalizer()
        bus = firmware_bridge.bus.DynamixelBus(robot.port, robot.bus_motors(), robot.baudrate, timeout_slack_ms=15.0)
        bus.connect()
        try:
            with safety_module.SafetyLayer(bus, norm.limits, safety_config(robot, norm)) as safety:
                present = safety.observe()
                state = norm.observation(present)
                assert state.dtype == np.float32
                expected = [lerobot_normalize(present[m.name], m.norm_mode.value, calib[m.name].range_min,
                                              calib[m.name].range_max) for m in robot.motors]
                assert state.tolist() == np.float32(expected).tolist()

                action = np.array([50.0, -50.0, 0.0, 25.0, -25.0, 80.0], dtype=np.float32)
                goal = norm.goal(action)
                assert safety.step(goal) == goal
                deadline = time.monotonic() + 5
                while safety.observe() != goal:
                    assert time.monotonic() < deadline, "arm did not reach the goal"
                    time.sleep(0.01)
                reached = norm.observation(safety.observe())
                one_tick = np.array([200 / (c.range_max - c.range_min) for c in calib.values()])
                one_tick[-1] /= 2  # the gripper is range_0_100
                assert np.all(np.abs(reached - action) <= one_tick + 1e-4)
        finally:
            bus.disconnect(disable_torque=False)  # the safety layer settled torque; the bus is ours
