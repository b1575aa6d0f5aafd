"""A simulated top-down camera for the reach task: renders the scene with the arm's present tool point.

It is an edge.robot.cameras.Camera: the robot reads its cameras right after the joints, so the frame a policy sees
shows the tool where the joints it reads put it (`joints` returns the latest present joint vector in policy
units; the demo passes `Robot.present_joints`). Each frame is rendered when the tick asks for it, so its capture
time is that moment and its age at the tick is the render time.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from edge.robot.cameras import Camera
from edge.sim.reach import Scene, TaskConfig, render, tool_point


class SimCamera(Camera):
    """The reach scene seen from above, with the tool where `joints()` puts it (see the module docstring)."""

    max_age_s = 1.0  # rendered on demand: never stale unless rendering itself stalls

    def __init__(self, name: str, scene: Scene, joints: Callable[[], np.ndarray],
                 size: int = TaskConfig.image_size):
        self.name = name
        self.scene = scene
        self.joints = joints
        self.shape = (size, size, 3)
        self.frames = 0

    def start(self) -> None:
        """Nothing to open."""

    def latest(self) -> tuple[np.ndarray, float]:
        """(size, size, 3) uint8 RGB: edge.sim.render of the scene at the present tool point, and its time."""
        self.frames += 1
        frame = render(self.scene, tool_point(np.asarray(self.joints(), dtype=np.float64)), self.shape[0])
        return frame, time.monotonic()

    def close(self) -> None:
        """Nothing to release."""
