"""The emulated arm: six servos on ids 1..6 with the SO-100/Koch joint names, as benches and rehearsals use it."""

from __future__ import annotations

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def default_arm_motors(model: str = "xl430-w250") -> dict[str, tuple[int, str]]:
    """The 6-joint arm (ids 1..6, SO-100/Koch joint names) as `DynamixelBus` motors."""
    return {name: (i, model) for i, name in enumerate(ARM_JOINTS, start=1)}
