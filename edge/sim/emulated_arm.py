"""An emulated 6-servo arm ready to drive: the pty servo emulator plus a matching robot file and calibration.

The emulated servos hold that calibration in their registers, as a calibrated arm's do, so the connect-time
calibration check passes. Used by `edge demo`, the loop tests and the benchmarks, so all run the real serial
stack with no hardware.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import yaml

from edge.robot.cameras import Camera
from edge.robot.control_loop import LoopConfig, run_loop
from edge.robot.executors import AsyncExecutor, SyncExecutor
from edge.robot.robot import Robot
from edge.robot.robot_file import BusConfig, RobotConfig, load_robot_config
from edge.robot.telemetry import Telemetry, TickRecord
from edge.runtime.policies.base import PolicyRunner
from firmware_bridge.emulator import ServoEmulator, default_arm_motors

MODEL = "xl430-w250"
RANGE = (1024, 3072)  # calibrated ticks, centred on 2048 where the emulator's servos start
BUS_SLACK_MS = 15.0  # reply slack for a Python emulator thread on a shared CPU (real servos: the default 3 ms)


def arm_files(directory: Path, port: str, hz: float, baudrate: int = 1_000_000) -> Path:
    """Write robot.yaml and calibration.json for the emulated arm into `directory`; returns the robot file."""
    motors = default_arm_motors(MODEL)
    calibration = {name: {"id": i, "drive_mode": 0, "homing_offset": 0, "range_min": RANGE[0], "range_max": RANGE[1]}
                   for name, (i, _) in motors.items()}
    (directory / "calibration.json").write_text(json.dumps(calibration, indent=4))
    robot = {
        "port": port,
        "baudrate": baudrate,
        "control_hz": hz,
        "calibration": "calibration.json",
        "motors": [{"name": name, "id": i, "model": model,
                    "norm_mode": "range_0_100" if name == "gripper" else "range_m100_100"}
                   for name, (i, model) in motors.items()],
        "safety": {"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": 200},
        "features": {"state": "observation.state", "action": "action"},
    }
    path = directory / "robot.yaml"
    path.write_text(yaml.safe_dump(robot, sort_keys=False))
    return path


def hold_calibration(emulator: ServoEmulator, bus: BusConfig) -> None:
    """Put a bus's calibration file into its emulated servos' registers (what `edge calibrate` leaves there)."""
    for calib in bus.load_calibration().values():
        servo = emulator.servos[calib.id]
        for register, value in (("Drive_Mode", calib.drive_mode), ("Homing_Offset", calib.homing_offset),
                                ("Min_Position_Limit", calib.range_min), ("Max_Position_Limit", calib.range_max)):
            servo.put(register, value)


@contextlib.contextmanager
def emulated_arm(hz: float = 50.0, timing: bool = True) -> Iterator[tuple[RobotConfig, ServoEmulator]]:
    """Start the emulator and yield a RobotConfig pointing at it; everything is cleaned up on exit."""
    with tempfile.TemporaryDirectory(prefix="edge-arm-") as tmp, \
            ServoEmulator.arm(MODEL, timing=timing) as emulator:
        config = load_robot_config(arm_files(Path(tmp), emulator.port, hz))
        hold_calibration(emulator, config.bus)
        yield config, emulator


def drive_emulated(policy: PolicyRunner, hz: float, seconds: float, asynchronous: bool = False,
                   static_features: dict[str, np.ndarray] | None = None,
                   on_tick: Callable[[TickRecord], None] | None = None,
                   cameras: Mapping[str, Camera] | None = None, delay_ticks: int = 1) -> Telemetry:
    """Run `policy` on a fresh emulated arm for `seconds` and return the telemetry (tests, benchmarks);
    `on_tick` sees each tick's record; `delay_ticks`: the async executor's D_est until it has measured a chunk."""
    executor = (AsyncExecutor(policy, period_s=1.0 / hz, delay_ticks=delay_ticks) if asynchronous
                else SyncExecutor(policy))
    telemetry = Telemetry(cameras=list(cameras or {}))
    try:
        with emulated_arm(hz=hz) as (config, _emulator), \
                Robot(config, cameras=dict(cameras or {}), static_features=static_features or {},
                      bus_timeout_slack_ms=BUS_SLACK_MS) as robot:
            policy.reset()
            run_loop(robot, executor, LoopConfig(hz=hz, duration_s=seconds), telemetry, on_tick=on_tick)
    finally:
        executor.close()
    return telemetry
