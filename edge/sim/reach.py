"""Reach-around-an-obstacle: the arm's tool point must reach a target with an obstacle in the way.

Units are the arm's policy units (LeRobot's range_m100_100 / range_0_100). The tool point is
p = (shoulder_pan, shoulder_lift) in [-100, 100]^2; the elbow follows the lift joint, wrist and
gripper hold. Each tick the policy commands all 6 joint goals; each joint moves toward its goal by
at most `max_speed` units (the emulated servos behave alike). An episode succeeds when the tool point
comes within `success_radius` of the target without ever entering the obstacle disk.

The scripted expert picks a side at random (50/50, independent of the observation) and goes around
the obstacle through a waypoint on that side, then to the target: a two-mode demonstration set that a
regression policy would average into the obstacle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_JOINTS = 6
ENV_DIM = 4  # target (x, y) and obstacle centre (x, y), divided by 100
REST = np.array([0.0, -70.0, 35.0, 0.0, 0.0, 50.0])


@dataclass(frozen=True)
class TaskConfig:
    hz: float = 20.0
    max_steps: int = 120
    max_speed: float = 6.0  # joint units per tick the servos follow
    expert_speed: float = 4.0  # units per tick the expert asks for
    obstacle_radius: float = 22.0
    clearance: float = 16.0  # how far outside the obstacle the expert's waypoint lies
    success_radius: float = 6.0
    image_size: int = 48


@dataclass(frozen=True)
class Scene:
    start: np.ndarray  # (2,)
    target: np.ndarray  # (2,)
    obstacle: np.ndarray  # (2,)

    def env_state(self) -> np.ndarray:
        """observation.environment_state: target and obstacle centre, /100."""
        return (np.concatenate([self.target, self.obstacle]) / 100.0).astype(np.float32)


def sample_scene(rng: np.random.Generator) -> Scene:
    start = np.array([rng.uniform(-10, 10), rng.uniform(-75, -65)])
    target = np.array([rng.uniform(-20, 20), rng.uniform(55, 70)])
    obstacle = (start + target) / 2 + rng.uniform(-4, 4, size=2)
    return Scene(start, target, obstacle)


def tool_point(joints: np.ndarray) -> np.ndarray:
    return np.asarray(joints[:2], dtype=np.float64)


def joints_for(point: np.ndarray) -> np.ndarray:
    """The full joint vector that puts the tool at `point` (elbow follows the lift, the rest at rest)."""
    joints = REST.copy()
    joints[:2] = point
    joints[2] = 35.0 - 0.5 * point[1]
    return joints


def side_of(scene: Scene, path: np.ndarray) -> int:
    """+1 / -1: which side of the start→target line the path passed the obstacle on (0: no path)."""
    if len(path) == 0:
        return 0
    closest = path[np.argmin(np.linalg.norm(path - scene.obstacle, axis=1))]
    direction = scene.target - scene.start
    offset = closest - scene.obstacle
    return int(np.sign(direction[0] * offset[1] - direction[1] * offset[0]) or 1)


class ReachEnv:
    """The task in numpy, far faster than real time; `edge eval` and the dataset generator use it."""

    def __init__(self, config: TaskConfig = TaskConfig()):
        self.config = config

    def reset(self, scene: Scene) -> dict[str, np.ndarray]:
        self.scene = scene
        self.joints = joints_for(scene.start)
        self.path = [tool_point(self.joints)]
        self.steps = 0
        self.collided = False
        return self.observation()

    def observation(self, with_image: bool = False) -> dict[str, np.ndarray]:
        obs = {"observation.state": self.joints.astype(np.float32),
               "observation.environment_state": self.scene.env_state()}
        if with_image:
            obs["observation.images.top"] = render(self.scene, tool_point(self.joints), self.config.image_size)
        return obs

    def step(self, action: np.ndarray) -> None:
        cfg = self.config
        delta = np.clip(np.asarray(action, dtype=np.float64) - self.joints, -cfg.max_speed, cfg.max_speed)
        self.joints = np.clip(self.joints + delta, [-100] * 5 + [0], [100] * 5 + [100])
        p = tool_point(self.joints)
        self.path.append(p)
        self.steps += 1
        if np.linalg.norm(p - self.scene.obstacle) < cfg.obstacle_radius:
            self.collided = True

    @property
    def success(self) -> bool:
        return (not self.collided) and bool(np.linalg.norm(self.path[-1] - self.scene.target) < self.config.success_radius)

    @property
    def done(self) -> bool:
        return self.collided or self.success or self.steps >= self.config.max_steps

    @property
    def side(self) -> int:
        return side_of(self.scene, np.array(self.path))


class Expert:
    """Scripted demonstrator: around the obstacle on a side drawn 50/50, then to the target."""

    def __init__(self, config: TaskConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng

    def reset(self, scene: Scene) -> int:
        """Draw the side for this episode and return it (+1 / -1)."""
        self.scene = scene
        direction = scene.target - scene.start
        normal = np.array([-direction[1], direction[0]]) / np.linalg.norm(direction)
        self.side = int(self.rng.choice([-1, 1]))
        self.waypoint = scene.obstacle + self.side * normal * (self.config.obstacle_radius + self.config.clearance)
        self.reached_waypoint = False
        return self.side

    def act(self, joints: np.ndarray) -> np.ndarray:
        p = tool_point(joints)
        if not self.reached_waypoint and np.linalg.norm(p - self.waypoint) < self.config.expert_speed * 2:
            self.reached_waypoint = True
        goal = self.scene.target if self.reached_waypoint else self.waypoint
        step = goal - p
        distance = np.linalg.norm(step)
        if distance > self.config.expert_speed:
            step *= self.config.expert_speed / distance
        return joints_for(p + step).astype(np.float32)


def render(scene: Scene, point: np.ndarray, size: int) -> np.ndarray:
    """A top-down uint8 HWC image: obstacle grey, target green, tool red, on black."""
    coords = (np.arange(size) + 0.5) / size * 200 - 100  # pixel centres in task units
    x, y = np.meshgrid(coords, coords[::-1])
    image = np.zeros((size, size, 3), np.uint8)

    def disk(centre: np.ndarray, radius: float) -> np.ndarray:
        return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2

    image[disk(scene.obstacle, 22.0)] = (128, 128, 128)
    image[disk(scene.target, 7.0)] = (0, 220, 0)
    image[disk(point, 7.0)] = (230, 0, 0)
    return image
