"""Real-robot paths run as a user runs them: `edge run` on the pty servo emulator (real dynamixel-sdk) with cameras
that are real OpenCV captures of video files and image sequences the tests write."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from edge.robot.robot_file import load_robot_config
from edge.sim.emulated_arm import arm_files, hold_calibration
from firmware_bridge.emulator import ServoEmulator


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[tuple[ServoEmulator, Path]]:
    """The emulated 6-servo arm, calibrated (its registers hold the robot file's calibration); yields
    (emulator, robot file)."""
    with ServoEmulator({i: "xl430-w250" for i in range(1, 7)}) as emulator:
        robot = arm_files(tmp_path, emulator.port, hz=30.0)
        hold_calibration(emulator, load_robot_config(robot).bus)
        yield emulator, robot


@pytest.fixture(scope="session")
def act_cam(export_fixture) -> Path:  # noqa: ANN001
    """LeRobot's act_cam (state 6 + one 96x128 camera) exported once per session."""
    return export_fixture("act_cam")
