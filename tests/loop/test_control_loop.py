"""The control loop: asynchronous inference never makes a tick wait (on a virtual clock), and on the emulated arm over
a real pty the loop caps and limits every goal and a signal leaves torque off and the port free."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.robot.control_loop import LoopConfig, run_loop
from edge.robot.drive import synthetic_observation
from edge.robot.executors import AsyncExecutor, SyncExecutor, VirtualExecutor
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


class VirtualTicks:
    """The control loop's clock in ticks, advanced by the test; a chunk's inference ends when it reaches a tick."""

    def __init__(self) -> None:
        self.tick = 0
        self.changed = threading.Condition()

    def advance(self, tick: int) -> None:
        with self.changed:
            self.tick = tick
            self.changed.notify_all()


class SlowPlanner:
    """The demo ACT, each chunk taking `cost` ticks of the virtual clock: `plan` returns once the clock reached the
    observation tick + cost. A plan on the control thread is a tick that waits for inference (`waited` keeps its
    observation tick: on a real clock it misses `cost` deadlines)."""

    def __init__(self, clock: VirtualTicks, cost: int) -> None:
        self.inner, self.clock, self.cost = edge.load_policy(DEMO), clock, cost
        self.policy_type, self.package = self.inner.policy_type, self.inner.package
        self.action_dim, self.chunking = self.inner.action_dim, self.inner.chunking
        self.control = threading.current_thread()
        self.asked: list[int] = []  # observation tick of every chunk
        self.waited: list[int] = []

    @property
    def out_of_distribution(self) -> dict[str, int]:
        return self.inner.out_of_distribution

    def reset(self) -> None:
        self.inner.reset()

    def observe(self, observation):  # noqa: ANN001, ANN201
        return self.clock.tick, self.inner.observe(observation)

    def plan(self, context, committed, delay):  # noqa: ANN001, ANN201
        tick, inner = context
        self.asked.append(tick)
        if threading.current_thread() is self.control:
            self.waited.append(tick)
        else:
            with self.clock.changed:
                assert self.clock.changed.wait_for(lambda: self.clock.tick >= tick + self.cost, timeout=60)
        return self.inner.plan(inner, committed, delay)


def run_virtual_loop(executor_for, ticks: int, cost: int) -> tuple[SlowPlanner, list, list[int]]:  # noqa: ANN001
    """Step an executor tick by tick on the virtual clock, each chunk `cost` ticks late (the worker is waited for
    once the clock reaches that tick, so the arrival tick is exact). Returns the planner, each tick's StepResult and
    the ticks a chunk was merged at."""
    clock = VirtualTicks()
    planner = SlowPlanner(clock, cost)
    executor = executor_for(planner)
    results, merged, requested = [], [], None
    observation = synthetic_observation(planner.inner)  # states inside the training statistics
    try:
        executor.reset()
        for t in range(ticks):
            clock.advance(t)
            if requested is not None and t == requested + cost:
                assert executor.wait_idle(60)
                requested = None
            was = executor._in_flight
            results.append(executor.step(observation, t))
            if executor._in_flight and not was and hasattr(executor, "wait_idle"):  # a chunk went to the worker
                requested = t
            if results[-1].inference_ms is not None:
                merged.append(t)
    finally:
        clock.advance(ticks + cost)
        executor.close()
    return planner, results, merged


def test_async_loop_meets_every_deadline_with_slow_inference():
    """Every chunk takes three control periods (virtual clock): the tick never waits for one, only the first chunk
    is waited for (the arm holds its goal meanwhile), and each later chunk lands before the queue runs dry. The
    wall-clock figures (missed deadlines, period error on the emulated arm) are benchmarks/bench_loop.py's."""
    cost = 3
    planner, results, merged = run_virtual_loop(lambda p: AsyncExecutor(p, delay_ticks=cost), 300, cost)
    assert planner.waited == []  # no tick waited: on a real clock, no deadline missed for inference
    acted = [r.action is not None for r in results]
    assert acted[:cost] == [False] * cost and all(acted[cost:])
    assert len(planner.asked) >= 300 // planner.chunking.n_action_steps - 1  # a chunk every n_action_steps ticks
    assert merged == [tick + cost for tick in planner.asked if tick + cost < 300]  # each exactly `cost` ticks late
    assert min(r.queue_depth for r in results[cost:]) > 0  # the next chunk always landed before the queue ran dry
    # from standstill nothing is stale; later, the rows for the ticks it was computed in were executed already
    assert [(t, r.dropped) for t, r in enumerate(results) if r.dropped or t in merged] == \
        [(merged[0], 0)] + [(t, cost) for t in merged[1:]]


def test_a_tick_that_plans_inline_is_seen_waiting():
    """The contrast that shows the test above can fail: an executor that plans in the tick (here the virtual
    driver with D = 0, as LeRobot's select_action) waits for every chunk."""
    planner, results, _ = run_virtual_loop(lambda p: VirtualExecutor(p, 0), 60, 3)
    assert planner.waited == planner.asked and len(planner.waited) == 6


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
