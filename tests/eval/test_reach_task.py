"""The reach task's judging (side, success, collision) on hand-made paths, and the expert solving it."""

from __future__ import annotations

import numpy as np

from edge.sim import Expert, ReachEnv, Scene, TaskConfig
from edge.sim.evaluate import evaluate
from edge.sim.reach import joints_for, side_of

# Straight up the y axis: start below, target above, obstacle in between. Looking from start to
# target (+y), "left" is -x.
SCENE = Scene(start=np.array([0.0, -70.0]), target=np.array([0.0, 60.0]), obstacle=np.array([0.0, 0.0]))


def detour(x: float) -> np.ndarray:
    """Start → (x, -30) → (x, 30) → target in small steps."""
    corners = np.array([SCENE.start, [x, -30.0], [x, 30.0], SCENE.target])
    return np.concatenate([np.linspace(a, b, 20, endpoint=False) for a, b in zip(corners, corners[1:])] + [corners[-1:]])


def test_side_of_hand_made_paths():
    assert side_of(SCENE, detour(-40.0)) == 1  # passes at negative x: left when facing the target
    assert side_of(SCENE, detour(40.0)) == -1
    # A scene facing the other way (+x): left is +y.
    east = Scene(np.array([-70.0, 0.0]), np.array([60.0, 0.0]), np.array([0.0, 0.0]))
    path = np.array([[-70, 0], [-30, 35], [30, 35], [60, 0]], float)
    assert side_of(east, path) == 1
    assert side_of(east, path * [1, -1]) == -1
    assert side_of(SCENE, np.zeros((0, 2))) == 0


def run_path(path: np.ndarray, config: TaskConfig = TaskConfig()) -> ReachEnv:
    env = ReachEnv(config)
    env.reset(SCENE)
    for p in path[1:]:
        if env.done:
            break
        env.step(joints_for(p))
    return env


def test_success_collision_and_timeout_on_hand_made_paths():
    wide = run_path(detour(-45.0))
    assert wide.success and not wide.collided and wide.side == 1
    right = run_path(detour(45.0))
    assert right.success and right.side == -1
    straight = run_path(np.linspace(SCENE.start, SCENE.target, 60))
    assert straight.collided and not straight.success and straight.done
    grazing = run_path(detour(-15.0))  # 15 < obstacle radius 22: clips the disk
    assert grazing.collided and not grazing.success
    short = run_path(detour(-45.0)[:40])  # stops before the target
    assert not short.success and not short.collided and not short.done


class ExpertController:
    """A PolicyRunner-free controller: the scripted expert, seeing only what a policy sees."""

    def __init__(self, seed: int):
        self.expert = Expert(TaskConfig(), np.random.default_rng(seed))
        self.scene = None

    def reset(self) -> None:
        self.scene = None

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.scene is None:  # first tick: the start is where the arm is, the rest is environment_state
            env = obs["observation.environment_state"].astype(np.float64) * 100
            self.scene = Scene(obs["observation.state"][:2].astype(np.float64), env[:2], env[2:])
            self.expert.reset(self.scene)
        return self.expert.act(obs["observation.state"].astype(np.float64))


def test_expert_solves_the_task_on_both_sides():
    result = evaluate(ExpertController(seed=7), episodes=100, seed=1000, images=False)
    assert result.successes == 100 and result.collisions == 0 and result.timeouts == 0
    assert 0.35 <= result.side_share("left") <= 0.65, result.sides
    assert result.sides["left"] + result.sides["right"] == 100
    # The side the path took is the side the expert chose.
    assert all(side in (1, -1) for _, _, side in result.outcomes)
