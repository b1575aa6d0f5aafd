"""The policy's own rate inside a faster servo loop: the policy advances at its fps, goals are interpolated by time.

A package records the rate its actions were recorded at (manifest dataset.fps). With a servo loop at `servo_hz` >=
`policy_hz`, policy tick k starts at the first servo tick at or after k / policy_hz; the executor steps (observes,
pops one action a_k) only then. In between, each servo tick's goal moves linearly by time from the goal in force
toward a_k and reaches it exactly at the last servo tick of policy tick k, so at equal rates every servo tick is
a policy tick and a_k is sent as is. No action yet (holding): the goal in force is held.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from edge.errors import OptionError
from edge.robot.executors import StepResult


def check_rates(servo_hz: float, policy_hz: float) -> None:
    """A servo loop slower than the policy would run the policy slow (every motion stretched): refused."""
    if servo_hz < policy_hz - 1e-9:
        raise OptionError(f"the servo loop runs at {servo_hz:g} Hz, below the policy's own rate of {policy_hz:g} "
                          f"actions a second (the package's dataset.fps): run at --hz {policy_hz:g} or faster")


class PolicyRate:
    """Wraps an executor stepped in policy ticks so that it can be stepped in servo ticks (run_loop's Executor)."""

    def __init__(self, executor, servo_hz: float, policy_hz: float):  # noqa: ANN001 (any Executor)
        check_rates(servo_hz, policy_hz)
        self.executor, self.servo_hz, self.policy_hz = executor, float(servo_hz), float(policy_hz)
        self.reset_timing()

    def reset_timing(self) -> None:
        self._k = -1
        self._from: np.ndarray | None = None  # the goal in force when policy tick k began
        self._to: np.ndarray | None = None  # a_k (or the held goal)
        self._depth = 0
        self._ood: Mapping[str, int] = {}
        self._last: np.ndarray | None = None  # the goal sent at the previous servo tick

    def reset(self) -> None:
        self.executor.reset()
        self.reset_timing()

    def policy_tick(self, tick: int) -> int:
        """The policy tick that servo tick `tick` falls in."""
        return math.floor(tick * self.policy_hz / self.servo_hz + 1e-9)

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        k = self.policy_tick(tick)
        fresh = None
        if k != self._k:
            self._k = k
            fresh = self.executor.step(observation, k)
            self._from = self._last
            if fresh.action is not None:
                self._to = np.asarray(fresh.action, np.float32)
            self._depth = fresh.queue_depth
        goal = self._goal(tick)
        if fresh is None:
            return StepResult(goal, self._depth, None, out_of_distribution=self._ood)
        self._ood = fresh.out_of_distribution
        return StepResult(goal, fresh.queue_depth, fresh.inference_ms, fresh.dropped,
                          out_of_distribution=fresh.out_of_distribution, seam_jump=fresh.seam_jump)

    def _goal(self, tick: int) -> np.ndarray | None:
        if self._to is None:
            return None
        frac = 1.0 if self._from is None else min(1.0, ((tick + 1) / self.servo_hz - self._k / self.policy_hz)
                                                  * self.policy_hz)
        goal = self._to if frac >= 1 else (self._from + np.float32(frac) * (self._to - self._from)).astype(np.float32)
        self._last = goal
        return goal

    def close(self) -> None:
        self.executor.close()
