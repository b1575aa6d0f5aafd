"""One arm as the control loop sees it: observations in policy units in, actions through the safety layer out.

Composes the robot file (calibration/), the Dynamixel bus and safety layer (firmware_bridge/) and
optional cameras. Nothing reaches a servo without passing `SafetyLayer.step`: limits, step cap, NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from calibration import JointNormalizer, RobotConfig
from edge.camera import Camera
from firmware_bridge import DynamixelBus
from firmware_bridge.safety import SafetyLayer


@dataclass
class Robot:
    """Connects on `__enter__` (torque on, goal = present position), always releases on `__exit__`."""

    config: RobotConfig
    cameras: Mapping[str, Camera] = field(default_factory=dict)
    static_features: Mapping[str, np.ndarray] = field(default_factory=dict)
    bus_timeout_slack_ms: float = 3.0  # extra reply time; the in-process emulator needs more on a busy machine

    def __post_init__(self) -> None:
        self.normalizer: JointNormalizer = self.config.normalizer()
        self.bus = DynamixelBus(self.config.port, self.config.bus_motors(), self.config.baudrate,
                                timeout_slack_ms=self.bus_timeout_slack_ms)
        self.safety = SafetyLayer(self.bus, self.normalizer.limits, self.config.safety_config(self.normalizer))
        self.motors = list(self.normalizer.motors)
        self._sent: dict[str, float] = {}
        self._present = np.zeros(len(self.motors), np.float32)

    def __enter__(self) -> "Robot":
        self.bus.connect()
        try:
            self.bus.configure()
            self.safety.__enter__()
        except BaseException:
            self.bus.disconnect()
            raise
        self._sent = dict(self.safety.present)
        self._present = self.normalizer.observation(self.safety.present)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.safety.__exit__(*exc)
        finally:
            self.bus.disconnect()
            for cam in self.cameras.values():
                cam.close()

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The observation dict the policy takes, and the joint positions in policy units."""
        present = self._present = self.normalizer.observation(self.safety.observe())
        obs = {self.config.features.state: present, **self.static_features}
        for name, cam in self.cameras.items():
            obs[name] = cam.read()
        return obs, present

    def present_joints(self) -> np.ndarray:
        """Joint positions of the latest `read()` (policy units): what a simulated camera draws the arm at."""
        return self._present

    def write(self, action: np.ndarray | None) -> np.ndarray:
        """Command an action (policy units, motor order) through the safety layer; None re-sends the last goal
        (keeps the bus watchdog fed while the first chunk is computed). Returns the goal sent, policy units."""
        goal: Mapping[str, float] = self._sent
        if action is not None:
            action = np.asarray(action, dtype=np.float64)
            finite = np.isfinite(action)  # non-finite entries go on as NaN: the safety layer rejects and counts them
            ticks = self.normalizer.unnormalize(np.where(finite, action, 0.0)).astype(np.float64)
            goal = dict(zip(self.motors, np.where(finite, ticks, np.nan).tolist()))
        sent = self._sent = self.safety.step(goal)
        return self.normalizer.normalize([sent[m] for m in self.motors]).astype(np.float32)

    @property
    def bus_errors(self) -> int:
        return self.safety.counters.comm_errors + self.safety.counters.hardware_errors

    @property
    def safety_interventions(self) -> int:
        c = self.safety.counters
        return c.clamped + c.step_capped + c.non_finite + c.missing + c.reactions + c.suppressed
