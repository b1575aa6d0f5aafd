"""The fixed-rate control loop: read → act → safety → write, once per tick, with telemetry.

Each tick: sync read of the joints (plus the cameras' latest frames) → observation in policy units → action
from the executor (synchronous or asynchronous) → safety layer → sync write. Timing uses absolute deadlines
(edge/robot/rate.py); a tick that overruns its period is counted as a missed deadline. A safety reaction ends the
loop with `SafetyTripped` once the tick is recorded. Nothing per tick outlives the tick.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

import numpy as np

from edge.robot.executors import StepResult
from edge.robot.rate import RateKeeper
from edge.robot.telemetry import Telemetry, TickRecord
from firmware_bridge.safety import SafetyTripped


class LoopRobot(Protocol):
    """What the loop needs from a robot (edge.robot.robot.Robot implements it)."""

    bus_errors: int
    safety_interventions: int
    tripped: str | None  # why a safety reaction was taken, None while running normally
    frame_age_ms: dict[str, float]  # per camera, age of the frame the latest read gave

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]: ...

    def write(self, action: np.ndarray | None) -> np.ndarray: ...


class Executor(Protocol):
    def step(self, observation: dict[str, np.ndarray], tick: int) -> StepResult: ...


@dataclass
class LoopConfig:
    hz: float = 50.0
    duration_s: float | None = None  # None: until stopped
    max_ticks: int | None = None
    stop: threading.Event | None = None  # set from another thread: the loop ends after the tick in progress


FrameHook = Callable[[TickRecord, Mapping[str, np.ndarray], np.ndarray], None]  # (record, observation, goal sent)


def run_loop(robot: LoopRobot, executor: Executor, config: LoopConfig, telemetry: Telemetry,
             on_tick: Callable[[TickRecord], None] | None = None, on_frame: FrameHook | None = None) -> Telemetry:
    """Drive `robot` with `executor` until the duration or tick count is reached, `config.stop` is set (checked after
    each tick, so a loop runs at least one), or a signal raises in the loop; a safety reaction raises SafetyTripped
    (after that tick's record). `on_frame` also sees the tick's observation (camera frames included) and the goal
    sent (the held goal on a tick with no action)."""
    rate = RateKeeper(config.hz)
    origin = rate.start
    previous = None
    count = 0
    missed_earlier = telemetry.missed_deadlines  # a run of several loops (recorded episodes) counts them all
    while True:
        if config.max_ticks is not None and count >= config.max_ticks:
            break
        if config.duration_s is not None and count * rate.period >= config.duration_s:
            break
        missed_before = rate.missed
        deadline = rate.wait() if count else rate.start
        started = time.perf_counter()
        count += 1
        observation, present = robot.read()
        result = executor.step(observation, rate.tick)
        goal = robot.write(result.action)
        record = TickRecord(
            tick=rate.tick, t=started - origin, deadline=deadline - origin,
            period_ms=0.0 if previous is None else (started - previous) * 1e3,
            inference_ms=result.inference_ms, queue_depth=result.queue_depth, action=result.action,
            goal=None if result.action is None else goal, present=present,
            bus_errors=robot.bus_errors, safety_interventions=robot.safety_interventions,
            dropped_actions=result.dropped, missed=rate.missed > missed_before,
            out_of_distribution=sum(result.out_of_distribution.values()),
            frame_age_ms=robot.frame_age_ms or None, seam_jump=result.seam_jump, safety_reaction=robot.tripped,
        )
        telemetry.out_of_distribution = result.out_of_distribution
        previous = started
        telemetry.missed_deadlines = missed_earlier + rate.missed
        telemetry.add(record)
        if on_tick is not None:
            on_tick(record)
        if on_frame is not None:
            on_frame(record, observation, goal)
        if robot.tripped is not None:
            raise SafetyTripped(robot.tripped)
        if config.stop is not None and config.stop.is_set():
            break
    return telemetry
