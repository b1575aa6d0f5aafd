"""`edge run` refuses rates it cannot honour before torque is ever enabled (emulated arm over a real pty)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.errors import OptionError
from edge.robot.drive import DriveOptions, drive
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.runtime.policies import runner_class
from edge.sim.emulated_arm import BUS_SLACK_MS, arm_files, emulated_arm, hold_calibration
from firmware_bridge.emulator import ServoEmulator

DEMO = Path(edge.__file__).parent / "data" / "demo_act"  # records fps 20
TARGET = {"observation.environment_state": np.array([0.1, 0.6, 0.05, -0.05], np.float32)}


def test_a_servo_rate_below_the_policys_fps_is_refused_before_torque_on(tmp_path):
    with ServoEmulator({i: "xl430-w250" for i in range(1, 7)}) as emulator:
        robot_file = arm_files(tmp_path, emulator.port, hz=50.0)
        hold_calibration(emulator, load_robot_config(robot_file).bus)
        goals = [emulator.register(i, "Goal_Position") for i in range(1, 7)]
        result = subprocess.run([sys.executable, "-m", "edge", "run", "--robot", str(robot_file), "--policy",
                                 str(DEMO), "--hz", "10", "--duration", "1", "--quiet",
                                 "--feature", "observation.environment_state=0.1,0.6,0.05,-0.05"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert "10 Hz, below the policy's own rate of 20" in result.stderr and "Traceback" not in result.stderr
        assert [emulator.register(i, "Torque_Enable") for i in range(1, 7)] == [0] * 6
        assert [emulator.register(i, "Goal_Position") for i in range(1, 7)] == goals


def test_an_uncoverable_latency_is_refused_before_torque_on(slow_backend):
    policy = runner_class("act")(edge.load_policy(DEMO).package, slow_backend(0.7))  # D = 16 at 20 Hz, P = 20
    with emulated_arm(hz=20.0) as (config, emulator):
        robot = Robot(config, static_features=TARGET, bus_timeout_slack_ms=BUS_SLACK_MS, loop_hz=20.0)
        with pytest.raises(OptionError, match=r"one chunk of 20 rows in flight covers the next only while 2\*D <= 20"):
            drive(robot, policy, DriveOptions(hz=20.0, duration_s=1.0, asynchronous=True, status=False))
        assert [emulator.register(i, "Torque_Enable") for i in range(1, 7)] == [0] * 6


def test_the_safety_step_cap_is_a_speed_whatever_the_loop_rate(tmp_path):
    with ServoEmulator({i: "xl430-w250" for i in range(1, 7)}) as emulator:
        config = load_robot_config(arm_files(tmp_path, emulator.port, hz=20.0))  # max_step_deg 4 per 20 Hz tick
        robot = Robot(config, loop_hz=100.0)
        at_file_rate = Robot(config)
        fast = robot.buses[0].safety.config.max_step_ticks
        base = at_file_rate.buses[0].safety.config.max_step_ticks
        assert all(fast[m] == max(1, round(base[m] / 5)) for m in base)  # 5x the ticks, 1/5 the step: same deg/s
