"""A simulated top-down camera for the reach task: renders the scene with the arm's present tool point.

It satisfies edge.camera.Camera. The robot reads its cameras right after the joints, so the frame a
policy sees shows the tool where the joints it reads put it; `joints` is a callback returning the
latest present joint vector in policy units (the demo passes `Robot.present_joints`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edge.sim.reach import Scene, TaskConfig, render, tool_point


class SimCamera:
    def __init__(self, scene: Scene, joints: Callable[[], np.ndarray], size: int = TaskConfig.image_size):
        self.scene = scene
        self.joints = joints
        self.size = size
        self.frames = 0

    def read(self) -> np.ndarray:
        """(size, size, 3) uint8 RGB: edge.sim.render of the scene at the present tool point."""
        self.frames += 1
        return render(self.scene, tool_point(np.asarray(self.joints(), dtype=np.float64)), self.size)

    def close(self) -> None:
        pass
