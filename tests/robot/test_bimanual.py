"""Two emulated buses as one bimanual robot (LeRobot's left_/right_ naming), a shadow servo on the right shoulder,
and the rule that one bus failing stops both arms."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration import MotorCalibration, save_calibration
from edge.cli import main
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.sim.emulated_arm import hold_calibration
from firmware_bridge import tables
from firmware_bridge.emulator import ARM_JOINTS, ServoEmulator

MODEL = "xl430-w250"
SHADOW = "shoulder_lift_shadow"


def bus_entry(port: str, calibration: str, shadow: bool) -> dict:
    motors = [{"name": n, "id": i, "model": MODEL, "norm_mode": "range_0_100" if n == "gripper" else "range_m100_100"}
              for i, n in enumerate(ARM_JOINTS, start=1)]
    if shadow:  # a second servo on the shoulder, as on ALOHA's ViperX arms
        motors.append({"name": SHADOW, "id": 7, "model": MODEL, "shadow_of": "shoulder_lift"})
    return {"port": port, "baudrate": 1_000_000, "calibration": calibration, "motors": motors}


@pytest.fixture
def bimanual(tmp_path: Path):
    """(left emulator, right emulator, robot file); the right chain has the shadow as id 7."""
    with ServoEmulator({i: MODEL for i in range(1, 7)}, timing=False) as left, \
            ServoEmulator({i: MODEL for i in range(1, 8)}, timing=False) as right:
        for side in ("left", "right"):
            save_calibration({n: MotorCalibration(i, 0, 0, 1024, 3072) for i, n in enumerate(ARM_JOINTS, start=1)},
                             tmp_path / f"{side}.json")
        robot = tmp_path / "bimanual.yaml"
        robot.write_text(yaml.safe_dump({
            "buses": {"left": bus_entry(left.port, "left.json", shadow=False),
                      "right": bus_entry(right.port, "right.json", shadow=True)},
            "control_hz": 50,
            "safety": {"max_step_deg": 4.0, "error_window_s": 0.1, "reaction": "torque_off", "watchdog_ms": 200},
        }, sort_keys=False))
        config = load_robot_config(robot)
        hold_calibration(left, config.buses[0])
        hold_calibration(right, config.buses[1])
        yield left, right, robot


def tick_until_tripped(robot: Robot, limit: int = 100) -> int:
    for n in range(limit):
        robot.read()
        robot.write(None)
        if robot.tripped is not None:
            return n
        time.sleep(0.02)
    raise AssertionError("no safety reaction")


def test_two_buses_one_robot_and_a_shadow_that_follows(bimanual, capsys) -> None:
    left, right, robot_file = bimanual
    config = load_robot_config(robot_file)
    with Robot(config, bus_timeout_slack_ms=15) as robot:
        assert robot.motors == [f"{side}_{n}" for side in ("left", "right") for n in ARM_JOINTS]
        _, state = robot.read()
        assert state.shape == (12,)
        assert right.register(7, "Secondary_ID") == 2 and right.register(7, "Operating_Mode") == 3
        assert "shadow of shoulder_lift (Secondary_ID=2)" in robot.describe()
        start = (right.register(2, "Present_Position"), left.register(2, "Present_Position"))
        target = state.astype(np.float64)
        for _ in range(40):  # ramp the right shoulder up; the left arm holds still
            target[7] = min(target[7] + 2.0, 30.0)
            robot.read()
            robot.write(target)
            time.sleep(0.01)
        time.sleep(0.1)
        moved = right.register(2, "Present_Position") - start[0]
        assert moved > 200
        assert abs(right.register(7, "Present_Position") - right.register(2, "Present_Position")) <= 2  # follows
        assert left.register(2, "Present_Position") == start[1]
        safety = robot.buses[1].safety
        assert SHADOW not in safety.joints and safety.watched == [SHADOW]  # never commanded, only read back

        right.hardware_error(7, tables.HW_OVERLOAD)  # the shadow is read back for its hardware-error status
        tick_until_tripped(robot)
        assert robot.tripped.startswith("bus right: hardware error") and SHADOW in robot.tripped
        assert all(left.register(i, "Torque_Enable") == 0 for i in left.servos)  # the other arm stopped too

    assert main(["reboot", "--robot", str(robot_file), "--joint", f"right_{SHADOW}"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1:] == ["overload", "none"]
    assert right.register(7, "Hardware_Error_Status") == 0


def test_one_bus_vanishing_stops_both_arms(bimanual) -> None:
    left, right, robot_file = bimanual
    with Robot(load_robot_config(robot_file), bus_timeout_slack_ms=15) as robot:
        for _ in range(5):
            robot.read()
            robot.write(None)
        assert all(right.register(i, "Torque_Enable") == 1 for i in range(1, 7))
        for servo_id in left.servos:
            left.vanish(servo_id)  # the left adapter is unplugged
        tick_until_tripped(robot)
        assert robot.tripped.startswith("bus left: communication")
        assert all(right.register(i, "Torque_Enable") == 0 for i in right.servos)
        assert all(a.safety.counters.reactions == 1 for a in robot.buses)
