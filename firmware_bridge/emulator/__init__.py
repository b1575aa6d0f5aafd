"""A chain of emulated X-series servos answering Protocol 2.0 on a pty, for tests, rehearsals and bench work.

`ServoEmulator` (transport.py) serves the chain; each `EmulatedServo` (servo.py) keeps a real control table with
the e-manual's register semantics and drives a motor model from its datasheet figures (physics.py); instructions
are dispatched in instructions.py; injected faults live in faults.py. docs/firmware_bridge.md has the details.
"""

from firmware_bridge.emulator.faults import TimedFault
from firmware_bridge.emulator.physics import Hand
from firmware_bridge.emulator.servo import EmulatedServo
from firmware_bridge.emulator.transport import ServoEmulator

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def default_arm_motors(model: str = "xl430-w250") -> dict[str, tuple[int, str]]:
    """The 6-joint arm (ids 1..6, SO-100/Koch joint names) as `DynamixelBus` motors."""
    return {name: (i, model) for i, name in enumerate(ARM_JOINTS, start=1)}


__all__ = ["ARM_JOINTS", "EmulatedServo", "Hand", "ServoEmulator", "TimedFault", "default_arm_motors"]
