"""A chain of emulated X-series servos answering Protocol 2.0 on a pty, for tests, rehearsals and bench work.

`ServoEmulator` (transport.py) serves the chain; each `EmulatedServo` (servo.py) keeps a real control table with
the e-manual's register semantics and drives a motor model from its datasheet figures (physics.py); instructions
are dispatched in instructions.py; injected faults live in faults.py; arm.py names the emulated 6-joint arm.
docs/firmware_bridge.md has the details.
"""

from firmware_bridge.emulator.arm import ARM_JOINTS, default_arm_motors
from firmware_bridge.emulator.faults import TimedFault
from firmware_bridge.emulator.physics import Hand
from firmware_bridge.emulator.servo import EmulatedServo
from firmware_bridge.emulator.transport import ServoEmulator

__all__ = ["ARM_JOINTS", "EmulatedServo", "Hand", "ServoEmulator", "TimedFault", "default_arm_motors"]
