"""How an episode of the reach task went, judged from the tool path tick by tick (nothing per tick is kept).

`edge demo` feeds it the tool point the servos' present positions give; the judgement is edge.sim.ReachEnv's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.sim.reach import Scene, TaskConfig, side_of


class ReachTracker:
    """The episode's outcome from the tool path, judged like edge.sim.ReachEnv (up to the first arrival), folded
    in tick by tick: first arrival, collision before it, the point closest to the obstacle (the side), and the
    closest approach to the target."""

    def __init__(self, scene: Scene, config: TaskConfig = TaskConfig()) -> None:
        self.scene, self.config = scene, config
        self.ticks = 0
        self.arrived_at: int | None = None
        self.collided = False
        self.closest_to_target = np.inf
        self._closest_to_obstacle = np.inf
        self._passing = np.zeros(2)  # tool point closest to the obstacle before arrival

    def update(self, point: np.ndarray) -> None:
        """One tick's tool point (the first two joints, policy units)."""
        self.ticks += 1
        to_target = float(np.hypot(*(point - self.scene.target)))
        self.closest_to_target = min(self.closest_to_target, to_target)
        if self.arrived_at is not None:
            return
        to_obstacle = float(np.hypot(*(point - self.scene.obstacle)))
        self.collided |= to_obstacle < self.config.obstacle_radius
        if to_obstacle < self._closest_to_obstacle:
            self._closest_to_obstacle, self._passing = to_obstacle, np.array(point[:2], dtype=np.float64)
        if to_target < self.config.success_radius:
            self.arrived_at = self.ticks

    def outcome(self) -> dict[str, Any]:
        """reached, arrived, collided, side (left/right/None), ticks_to_target, closest_to_target."""
        if not self.ticks:
            return {"reached": False, "collided": False, "side": None, "ticks_to_target": None}
        side = side_of(self.scene, self._passing[None])
        return {"reached": self.arrived_at is not None and not self.collided, "arrived": self.arrived_at is not None,
                "collided": self.collided, "side": {1: "left", -1: "right"}.get(side),
                "ticks_to_target": self.arrived_at, "closest_to_target": self.closest_to_target}


def describe(outcome: dict[str, Any]) -> str:
    side = f"passing {outcome['side']} of the obstacle" if outcome["side"] else "no path"
    if outcome["reached"]:
        return f"target reached after {outcome['ticks_to_target']} ticks, {side}"
    if outcome["collided"]:
        return f"target not reached: the tool entered the obstacle ({side})"
    return f"target not reached (closest {outcome.get('closest_to_target', float('nan')):.1f} units), {side}"
