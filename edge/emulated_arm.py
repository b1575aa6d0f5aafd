"""An emulated 6-servo arm ready to drive: the pty servo emulator plus a matching robot file and calibration.

Used by `edge demo` and by the loop tests, so both run the real serial stack with no hardware.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Iterator

import yaml

import numpy as np

from calibration import RobotConfig, load_robot_config
from edge.chunker import AsyncExecutor, SyncExecutor
from edge.control_loop import LoopConfig, run_loop
from edge.policies.base import PolicyRunner
from edge.robot import Robot
from edge.telemetry import Telemetry
from firmware_bridge import ARM_JOINTS, ServoEmulator

MODEL = "xl430-w250"
RANGE = (1024, 3072)  # calibrated ticks, centred on 2048 where the emulator's servos start
BUS_SLACK_MS = 15.0  # reply slack for a Python emulator thread on a shared CPU (real servos: the default 3 ms)


def arm_files(directory: Path, port: str, hz: float, baudrate: int = 1_000_000) -> Path:
    """Write robot.yaml and calibration.json for the emulated arm into `directory`; returns the robot file."""
    calibration = {name: {"id": i, "drive_mode": 0, "homing_offset": 0, "range_min": RANGE[0], "range_max": RANGE[1]}
                   for i, name in enumerate(ARM_JOINTS, start=1)}
    (directory / "calibration.json").write_text(json.dumps(calibration, indent=4))
    robot = {
        "port": port,
        "baudrate": baudrate,
        "control_hz": hz,
        "calibration": "calibration.json",
        "motors": [{"name": name, "id": i, "model": MODEL,
                    "norm_mode": "range_0_100" if name == "gripper" else "range_m100_100"}
                   for i, name in enumerate(ARM_JOINTS, start=1)],
        "safety": {"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": 200},
        "features": {"state": "observation.state", "action": "action"},
    }
    path = directory / "robot.yaml"
    path.write_text(yaml.safe_dump(robot, sort_keys=False))
    return path


@contextlib.contextmanager
def emulated_arm(hz: float = 50.0, timing: bool = True) -> Iterator[tuple[RobotConfig, ServoEmulator]]:
    """Start the emulator and yield a RobotConfig pointing at it; everything is cleaned up on exit."""
    with tempfile.TemporaryDirectory(prefix="edge-arm-") as tmp, \
            ServoEmulator({i: MODEL for i in range(1, len(ARM_JOINTS) + 1)}, timing=timing) as emulator:
        yield load_robot_config(arm_files(Path(tmp), emulator.port, hz)), emulator


def drive_emulated(policy: PolicyRunner, hz: float, seconds: float, asynchronous: bool = False,
                   static_features: dict[str, np.ndarray] | None = None, threshold: int | None = None) -> Telemetry:
    """Run `policy` on a fresh emulated arm for `seconds` and return the telemetry (tests, benchmarks).

    `threshold`: the async executor's queue depth at which the next chunk is started (its default if None)."""
    executor = AsyncExecutor(policy, threshold=threshold) if asynchronous else SyncExecutor(policy)
    telemetry = Telemetry()
    try:
        with emulated_arm(hz=hz) as (config, _emulator), \
                Robot(config, static_features=static_features or {}, bus_timeout_slack_ms=BUS_SLACK_MS) as robot:
            policy.reset()
            run_loop(robot, executor, LoopConfig(hz=hz, duration_s=seconds), telemetry)
    finally:
        executor.close()
    return telemetry
