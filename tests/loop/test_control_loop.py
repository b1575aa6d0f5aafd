"""The control loop on the emulated arm over a real pty: asynchronous inference never stalls the servos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.robot.control_loop import LoopConfig, run_loop
from edge.robot.executors import SyncExecutor
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import Telemetry
from edge.runtime.policies import runner_class
from edge.sim.emulated_arm import BUS_SLACK_MS, arm_files, drive_emulated, emulated_arm, hold_calibration
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator

DEMO = Path(edge.__file__).parent / "data" / "demo_act"
TARGET = {"observation.environment_state": np.array([0.1, 0.6, 0.05, -0.05], np.float32)}  # target, obstacle
SUMMARY_KEYS = {"ticks", "hz", "period_ms", "inference_ms", "missed_deadlines", "bus_errors", "safety_interventions",
                "out_of_distribution", "seams", "jerk_rms", "dropped", "holding_share"}


def drive_slow(asynchronous: bool, hz: float, seconds: float, slow_backend) -> tuple[dict, list]:  # noqa: ANN001
    """The demo ACT on the emulated arm, every inference taking three control periods; the summary and what the
    test keeps of each tick (the telemetry itself keeps nothing per tick)."""
    policy = runner_class("act")(edge.load_policy(DEMO).package, slow_backend(3.0 / hz))
    ticks: list = []
    telemetry = drive_emulated(policy, hz, seconds, asynchronous, TARGET,
                               on_tick=lambda r: ticks.append((r.t, r.deadline, r.goal is not None)))
    return telemetry.summary(), ticks
def test_async_loop_meets_every_deadline_with_slow_inference(slow_backend):
    summary, ticks = drive_slow(True, hz=100.0, seconds=3.0, slow_backend=slow_backend)
    assert set(summary) == SUMMARY_KEYS
    assert summary["ticks"] == 300
    # Zero on a quiet machine (see benchmarks/bench_loop.py); a loaded 2-core CI machine has cost up to 6. An
    # executor that waited for inference would miss three periods at every one of the ~30 refills (~90).
    assert summary["missed_deadlines"] <= 15
    assert summary["inference_ms"]["p50"] >= 30.0  # the slow backend really was slow
    errors = [abs(t - deadline) * 1e3 for t, deadline, _ in ticks]
    assert np.percentile(errors, 95) < 5.0  # loose here; the 1 ms / 0.5 ms figures are in the benchmark
    acted = [a for _, _, a in ticks]
    assert not acted[0] and all(acted[10:])  # only the first chunk is waited for, and the loop holds meanwhile


def test_sync_loop_with_slow_inference_misses_deadlines(slow_backend):
    """The contrast that shows the async test can fail: LeRobot's inline inference stalls the loop."""
    summary, _ = drive_slow(False, hz=100.0, seconds=1.0, slow_backend=slow_backend)
    assert summary["missed_deadlines"] >= 20  # every refill stalls the loop for three periods
    assert summary["period_ms"]["max"] >= 30.0


def test_goals_are_step_capped_and_inside_limits():
    """Every goal the loop commanded stayed inside the calibrated range and within the per-tick cap."""
    policy = edge.load_policy(DEMO)
    goals = []
    with emulated_arm(hz=50.0) as (config, _emulator), \
            Robot(config, static_features=TARGET, bus_timeout_slack_ms=BUS_SLACK_MS) as robot:
        run_loop(robot, SyncExecutor(policy), LoopConfig(hz=50.0, max_ticks=60), Telemetry(),
                 on_tick=lambda r: goals.append(r.goal))
        caps = robot.safety.config.max_step_ticks
        limit = np.array([caps[m] for m in robot.motors[:5]]) * 200 / 2048 + 1e-6  # range_m100_100 units per tick
    goals = np.array(goals)
    steps = np.abs(np.diff(goals[:, :5], axis=0))
    assert np.all(steps <= limit)
    assert steps.max() > 0.5 * limit.min()  # the policy really pushed against the cap
    assert np.all(goals[:, :5] >= -100) and np.all(goals[:, :5] <= 100)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_torque_off_and_port_free(tmp_path, sig):
    with ServoEmulator({i: "xl430-w250" for i in range(1, 7)}) as emulator:
        robot_file = arm_files(tmp_path, emulator.port, hz=50.0)
        hold_calibration(emulator, load_robot_config(robot_file).bus)
        summary = tmp_path / "summary.json"
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--robot", str(robot_file),
                                 "--policy", str(DEMO), "--summary", str(summary), "--quiet",
                                 "--feature", "observation.environment_state=0.1,0.6,0.05,-0.05",
                                 "--bus-slack-ms", "15"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while emulator.register(1, "Torque_Enable") == 0:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + sig, err  # 130 for Ctrl-C
        assert "interrupted (received SIG" in out.splitlines()[-1]
        assert [emulator.register(i, "Torque_Enable") for i in range(1, 7)] == [0] * 6
        assert set(json.loads(summary.read_text())) == SUMMARY_KEYS
        bus = DynamixelBus(emulator.port, {"shoulder_pan": (1, "xl430-w250")})
        bus.connect()  # the port was released: a new client can open it and talk
        assert bus.read("Torque_Enable", "shoulder_pan") == 0
        bus.disconnect()
