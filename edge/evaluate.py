"""Closed-loop evaluation on the simulated reach task: success rate and which side episodes took.

The same scenes (seeded) for every configuration, so PyTorch, ONNX Runtime, FP16 and few-step
variants of one policy are compared on identical episodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.policies.base import PolicyRunner
from edge.sim import ReachEnv, TaskConfig, sample_scene


@dataclass
class EvalResult:
    episodes: int
    successes: int
    collisions: int
    sides: dict[str, int] = field(default_factory=dict)  # "left"/"right" counts over all episodes

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def side_share(self, side: str) -> float:
        return self.sides.get(side, 0) / self.episodes if self.episodes else 0.0


def evaluate(policy: PolicyRunner, episodes: int = 50, seed: int = 1000, config: TaskConfig = TaskConfig(),
             progress=None) -> EvalResult:  # noqa: ANN001
    """Run `episodes` episodes of the reach task with `policy` (reset before each)."""
    images = any(inp.kind == "image" for inp in policy.package.manifest.inputs)
    env = ReachEnv(config)
    rng = np.random.default_rng(seed)
    result = EvalResult(episodes, 0, 0, {"left": 0, "right": 0})
    for i in range(episodes):
        env.reset(sample_scene(rng))
        policy.reset()
        while not env.done:
            env.step(policy.select_action(env.observation(with_image=images)))
        result.successes += env.success
        result.collisions += env.collided
        result.sides["left" if env.side > 0 else "right"] += 1
        if progress is not None:
            progress(i + 1, result)
    return result
