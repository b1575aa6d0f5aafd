"""Closed-loop evaluation on the simulated reach task: success rate and which side episodes took.

The same scenes (seeded) for every configuration, so PyTorch, ONNX Runtime, FP16 and few-step
variants of one policy are compared on identical episodes.

`evaluate` takes a PolicyRunner, or anything with `reset()` and `select_action(observation)` when
`images` is given (a scripted controller, a test double).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge.sim import ReachEnv, TaskConfig, sample_scene


@dataclass
class EvalResult:
    episodes: int
    successes: int
    collisions: int
    sides: dict[str, int] = field(default_factory=dict)  # "left"/"right" counts over all episodes
    timeouts: int = 0  # episodes that ended at max_steps without success or collision
    steps: int = 0  # environment steps over all episodes
    outcomes: list[tuple[bool, bool, int]] = field(default_factory=list)  # per episode: success, collided, side

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def side_share(self, side: str) -> float:
        return self.sides.get(side, 0) / self.episodes if self.episodes else 0.0

    def summary(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "success_rate": self.success_rate, "successes": self.successes,
                "collisions": self.collisions, "timeouts": self.timeouts, "left": self.side_share("left"),
                "right": self.side_share("right"), "mean_steps": self.steps / self.episodes if self.episodes else 0.0}


SIDE_NAMES = {1: "left", -1: "right"}  # edge.sim.side_of: +1 = left of the start→target line


def evaluate(policy: Any, episodes: int = 50, seed: int = 1000, config: TaskConfig = TaskConfig(),
             progress: Callable[[int, EvalResult], None] | None = None, images: bool | None = None) -> EvalResult:
    """Run `episodes` episodes of the reach task with `policy` (reset before each)."""
    if images is None:
        images = any(inp.kind == "image" for inp in policy.package.manifest.inputs)
    env = ReachEnv(config)
    rng = np.random.default_rng(seed)
    result = EvalResult(episodes, 0, 0, {"left": 0, "right": 0})
    for i in range(episodes):
        env.reset(sample_scene(rng))
        policy.reset()
        while not env.done:
            env.step(policy.select_action(env.observation(with_image=images)))
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
