"""The move to the rest pose on a clean shutdown: through the same limits and step cap as any policy goal."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from firmware_bridge.motors_bus import MotorsBus
from firmware_bridge.safety.sanitizer import GoalSanitizer

logger = logging.getLogger(__name__)


def move_to_rest(bus: MotorsBus, sanitizer: GoalSanitizer, goal: Mapping[str, int], rest_pose: Mapping[str, int],
                 timeout_s: float, tick_s: float) -> None:
    """Step the joints from `goal` (the last safe goal) toward `rest_pose` (ticks; joints it omits stay) until
    every joint is within one step of it or `timeout_s` passes (logged). BusError propagates."""
    rest = {**goal, **rest_pose}
    target = {m: sanitizer.clamp(m, v) for m, v in rest.items()}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        goal = sanitizer.sanitize(goal, rest)
        bus.write_goals(goal)
        present = bus.read_positions(list(goal))
        if goal == target and all(abs(present[m] - target[m]) <= sanitizer.max_step[m] for m in target):
            return
        time.sleep(tick_s)
    logger.warning("rest pose not reached within %.1f s", timeout_s)
