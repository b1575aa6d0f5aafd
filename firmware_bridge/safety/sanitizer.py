"""Per-joint limits and step cap: what turns a tick's policy goals into goals safe to write to the servos."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from firmware_bridge.safety.config import SafetyCounters, SafetyRefused


class GoalSanitizer:
    """Clamps goals to `limits` (ticks, inclusive) and caps their change per tick to `max_step_ticks` (one for all
    joints, or per joint); a missing or NaN/inf goal keeps the joint's last safe goal. Every intervention is
    counted in `counters`."""

    def __init__(self, limits: Mapping[str, tuple[int, int]], max_step_ticks: int | Mapping[str, int],
                 joints: Iterable[str], counters: SafetyCounters) -> None:
        for name, (lo, hi) in limits.items():
            if lo > hi:
                raise SafetyRefused(f"joint {name!r}: limits ({lo}, {hi}) are reversed")
        per_joint = max_step_ticks if isinstance(max_step_ticks, Mapping) else {}
        for name in per_joint:
            if name not in limits:
                raise SafetyRefused(f"rest pose or max_step_ticks names unknown motor {name!r}")
        if per_joint and set(per_joint) != set(limits):
            raise SafetyRefused(f"max_step_ticks has no entry for {sorted(set(limits) - set(per_joint))}")
        self.limits = {name: (int(lo), int(hi)) for name, (lo, hi) in limits.items()}
        self.max_step = {m: int(per_joint[m]) if per_joint else int(max_step_ticks) for m in joints}
        self.counters = counters

    def clamp(self, name: str, goal: float) -> float:
        """`goal` inside joint `name`'s limits."""
        lo, hi = self.limits[name]
        return min(max(goal, lo), hi)

    def sanitize(self, previous: Mapping[str, int], goals: Mapping[str, float]) -> dict[str, int]:
        """Integer goals for every joint of `previous` (the last safe goals): clamped, step-capped, NaN/inf and
        missing goals replaced by the previous one."""
        safe = {}
        for name, last in previous.items():
            step = self.max_step[name]
            goal = goals.get(name)
            if goal is None:
                self.counters.missing += 1
                goal = last
            elif not math.isfinite(goal := float(goal)):
                self.counters.non_finite += 1
                goal = last
            clamped = self.clamp(name, goal)
            if clamped != goal:
                self.counters.clamped += 1
                goal = clamped
            if abs(goal - last) > step:
                self.counters.step_capped += 1
                goal = last + math.copysign(step, goal - last)
            safe[name] = int(self.clamp(name, round(goal)))
        return safe
