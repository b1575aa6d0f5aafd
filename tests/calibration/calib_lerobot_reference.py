"""An independent scalar re-statement of LeRobot 0.4.4's Dynamixel normalisation, for parity tests.

Written per motor in plain Python from LeRobot's documented behaviour (motors_bus._normalize/_unnormalize with
DynamixelMotorsBus.apply_drive_mode = False; FeetechMotorsBus uses True), not from the product code.
"""

from __future__ import annotations


def lerobot_normalize(tick: int, mode: str, rmin: int, rmax: int, drive_mode: int = 0,
                      apply_drive_mode: bool = False, resolution: int = 4096) -> float:
    """Present_Position tick -> policy unit, one motor."""
    invert = bool(apply_drive_mode and drive_mode)
    if mode == "degrees":
        middle = (rmin + rmax) / 2
        return (tick - middle) * 360 / (resolution - 1)
    clamped = rmin if tick < rmin else rmax if tick > rmax else tick
    if mode == "range_m100_100":
        value = (((clamped - rmin) / (rmax - rmin)) * 200) - 100
        return -value if invert else value
    if mode == "range_0_100":
        value = ((clamped - rmin) / (rmax - rmin)) * 100
        return 100 - value if invert else value
    raise ValueError(mode)


def lerobot_unnormalize(value: float, mode: str, rmin: int, rmax: int, drive_mode: int = 0,
                        apply_drive_mode: bool = False, resolution: int = 4096) -> int:
    """Policy unit -> Goal_Position tick, one motor (int() truncates toward zero, as LeRobot)."""
    invert = bool(apply_drive_mode and drive_mode)
    if mode == "degrees":
        middle = (rmin + rmax) / 2
        return int((value * (resolution - 1) / 360) + middle)
    if mode == "range_m100_100":
        if invert:
            value = -value
        value = max(-100.0, min(100.0, value))
        return int(((value + 100) / 200) * (rmax - rmin) + rmin)
    if mode == "range_0_100":
        if invert:
            value = 100 - value
        value = max(0.0, min(100.0, value))
        return int((value / 100) * (rmax - rmin) + rmin)
    raise ValueError(mode)


def lerobot_half_turn_homing(present_position: int, resolution: int = 4096) -> int:
    """Dynamixel: Present = Actual + Homing_Offset, so the offset that makes the present position 2047."""
    return int((resolution - 1) / 2) - present_position
