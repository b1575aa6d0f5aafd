"""Closed-loop evaluation on the simulated reach task: success rate, which side episodes took, how smooth.

The same scenes (seeded) for every configuration, and the policy's sampler reseeded per episode, so PyTorch, ONNX
Runtime, FP16, few-step and delayed variants of one policy are compared paired, on identical episodes. Without
`delay_ticks` the policy runs LeRobot's synchronous select_action (inference in zero simulated time); with it,
chunks run through the robot's execution core on a virtual clock (edge.robot.executors.VirtualExecutor), each
merged `delay_ticks` ticks after its observation tick.

`evaluate` takes a PolicyRunner, or anything with `reset()` and `select_action(observation)` when
`images` is given (a scripted controller, a test double).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge.robot.executors import SyncExecutor, VirtualExecutor
from edge.sim import ReachEnv, TaskConfig, sample_scene


class Smoothness:
    """Seams and jerk of the executed goals, in policy units (jerk: third difference over dt³, RMS over ticks and
    joints), the stale actions dropped and the ticks spent holding."""

    def __init__(self, dt: float):
        self.dt = dt
        self.jumps: list[float] = []
        self.jerk_sq, self.jerk_n, self.dropped, self.holding, self.ticks = 0.0, 0, 0, 0, 0
        self.frozen_episodes = 0  # episodes in which not one action was executed
        self.recent: list[np.ndarray] = []
        self.acted = True

    def start(self) -> None:
        self.frozen_episodes += not self.acted
        self.recent = []  # the last 4 executed goals of this episode
        self.acted = False

    def add(self, goal: np.ndarray, seam_jump: float | None, holding: bool, dropped: int) -> None:
        self.ticks += 1
        self.holding += holding
        self.acted = self.acted or not holding
        self.dropped += dropped
        if seam_jump is not None:
            self.jumps.append(seam_jump)
        self.recent = (self.recent + [np.asarray(goal, np.float64)])[-4:]
        if len(self.recent) == 4:
            a, b, c, d = self.recent
            jerk = (d - 3 * c + 3 * b - a) / self.dt**3
            self.jerk_sq += float(np.sum(jerk * jerk))
            self.jerk_n += jerk.size

    def summary(self) -> dict[str, Any]:
        jumps = np.array(self.jumps)
        return {"seams": {"count": len(jumps), "jump_p95": float(np.percentile(jumps, 95)) if len(jumps) else 0.0,
                          "jump_max": float(jumps.max()) if len(jumps) else 0.0},
                "jerk_rms": (self.jerk_sq / self.jerk_n) ** 0.5 if self.jerk_n else 0.0,
                "dropped": self.dropped, "holding_share": self.holding / self.ticks if self.ticks else 0.0,
                "frozen_episodes": self.frozen_episodes + (not self.acted)}


@dataclass
class EvalResult:
    episodes: int
    successes: int
    collisions: int
    sides: dict[str, int] = field(default_factory=dict)  # "left"/"right" counts over all episodes
    timeouts: int = 0  # episodes that ended at max_steps without success or collision
    steps: int = 0  # environment steps over all episodes
    outcomes: list[tuple[bool, bool, int]] = field(default_factory=list)  # per episode: success, collided, side
    smoothness: Smoothness | None = None

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def side_share(self, side: str) -> float:
        return self.sides.get(side, 0) / self.episodes if self.episodes else 0.0

    def summary(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "success_rate": self.success_rate, "successes": self.successes,
                "collisions": self.collisions, "timeouts": self.timeouts, "left": self.side_share("left"),
                "right": self.side_share("right"), "mean_steps": self.steps / self.episodes if self.episodes else 0.0,
                **(self.smoothness.summary() if self.smoothness is not None else {})}


SIDE_NAMES = {1: "left", -1: "right"}  # edge.sim.side_of: +1 = left of the start→target line


def evaluate(policy: Any, episodes: int = 50, seed: int = 1000, config: TaskConfig = TaskConfig(),
             progress: Callable[[int, EvalResult], None] | None = None, images: bool | None = None,
             delay_ticks: int | None = None, merge: str = "latest",
             notify: Callable[[str], None] | None = None) -> EvalResult:
    """Run `episodes` episodes of the reach task with `policy` (reset, and its sampler reseeded, before each).

    `delay_ticks` D: execute through the asynchronous core on a virtual clock, each chunk merged D ticks after its
    observation tick, overlaps merged by `merge`; `notify` hears the core's one-time coverage notice."""
    if images is None:
        images = any(inp.kind == "image" for inp in policy.package.manifest.inputs)
    executor = (SyncExecutor(policy) if delay_ticks is None
                else VirtualExecutor(policy, delay_ticks, merge, notify=notify))
    env = ReachEnv(config)
    rng = np.random.default_rng(seed)
    smooth = Smoothness(1.0 / config.hz)
    result = EvalResult(episodes, 0, 0, {"left": 0, "right": 0}, smoothness=smooth)
    for i in range(episodes):
        env.reset(sample_scene(rng))
        if isinstance(getattr(policy, "rng", None), np.random.Generator):
            policy.rng = np.random.default_rng((seed, i))  # paired rows: the same draws on the same scene
        executor.reset()
        smooth.start()
        goal = env.joints.astype(np.float32)  # held until the first action
        tick = 0
        while not env.done:
            step = executor.step(env.observation(with_image=images), tick)
            action = step.action
            smooth.add(goal if action is None else action, step.seam_jump, action is None, step.dropped)
            goal = goal if action is None else action
            env.step(goal)
            tick += 1
        side = env.side
        result.successes += env.success
        result.collisions += env.collided
        result.timeouts += not (env.success or env.collided)
        result.steps += env.steps
        result.sides[SIDE_NAMES.get(side, "right")] += 1
        result.outcomes.append((bool(env.success), bool(env.collided), side))
        if progress is not None:
            progress(i + 1, result)
    return result


def runner_options(runner_cls: type, **options: Any) -> dict[str, Any]:
    """The subset of `options` (None values dropped) that `runner_cls.__init__` accepts by name."""
    accepted = inspect.signature(runner_cls.__init__).parameters
    return {k: v for k, v in options.items() if v is not None and k in accepted}


COLUMNS = ("configuration", "episodes", "success %", "Δ vs PyTorch", "left %", "right %", "collisions", "timeouts")


def format_row(name: str, result: EvalResult, reference: EvalResult | None = None) -> list[str]:
    delta = "—" if reference is None else f"{100 * (result.success_rate - reference.success_rate):+.1f}"
    return [name, str(result.episodes), f"{100 * result.success_rate:.1f}", delta,
            f"{100 * result.side_share('left'):.1f}", f"{100 * result.side_share('right'):.1f}",
            str(result.collisions), str(result.timeouts)]


def markdown_table(rows: list[list[str]], columns: tuple[str, ...] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def text_table(rows: list[list[str]], columns: tuple[str, ...] = COLUMNS) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(list(columns))] + [fmt(r) for r in rows])
