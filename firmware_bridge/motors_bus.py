"""`MotorsBus`: what the safety layer and the robot need from a servo bus, in words of the job, not of a register.

LeRobot's MotorsBusBase idea: callers read joints, write goals, switch torque, arm the watchdog and ask for error
status; which control-table register each call touches is the implementation's business. `DynamixelBus`
(firmware_bridge/bus.py, Protocol 2.0 X-series) is the one implementation. Positions are the servo's raw ticks;
a failed transaction raises `BusError` (also importable from firmware_bridge.bus, where it always was).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from firmware_bridge.errors import FirmwareBridgeError

WATCHDOG_FIRED = -1  # what `read_watchdog` gives for a servo whose watchdog fired (it stopped and refuses goals)


class BusError(FirmwareBridgeError, RuntimeError):
    """A bus transaction failed; `motors` names the servos involved and `cause` says why."""

    def __init__(self, what: str, motors: Iterable[str], cause: str) -> None:
        self.motors = tuple(motors)
        self.cause = cause
        super().__init__(f"{what} [{', '.join(self.motors)}]: {cause}" if self.motors else f"{what}: {cause}")


class MotorsBus(Protocol):
    """A chain of servos on one port, addressed by motor name."""

    @property
    def motors(self) -> Mapping[str, object]:
        """The motors on the bus, by name, in bus order."""

    @property
    def alerts(self) -> set[str]:
        """Motors whose last reply flagged a hardware error (`hardware_error` says which)."""

    def connect(self) -> None:
        """Open the port, check every motor answers as the model it should be."""

    def disconnect(self, disable_torque: bool = True) -> None:
        """Torque off (unless told not to) and release the port; safe twice."""

    def configure(self, setup: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, int]]:
        """Write each motor's setup torque-off, read it back; returns what is in force."""

    def ping(self, motor: str) -> int:
        """The model number `motor` answers with."""

    def read_positions(self, motors: Iterable[str]) -> dict[str, int]:
        """Present positions, ticks."""

    def write_goals(self, goals: Mapping[str, int]) -> None:
        """Goal positions, ticks, for every motor named."""

    def operating_modes(self, motors: Iterable[str]) -> dict[str, str]:
        """Each motor's operating mode by name (`position`, `extended_position`, ...; an unknown one as its number)."""

    def enable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque on, confirmed (all motors by default)."""

    def disable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque off, confirmed (all motors by default)."""

    def torque_enabled(self, motors: Iterable[str]) -> dict[str, bool]:
        """Whether each motor holds torque now (a servo that reset comes back without)."""

    def arm_watchdog(self, motors: Iterable[str], window_ms: float) -> int:
        """Clear a fired watchdog and arm it: no instruction for `window_ms` stops the servo. Returns the window in
        force, ms (rounded up to the servo's unit)."""

    def read_watchdog(self, motors: Iterable[str]) -> dict[str, int]:
        """Each motor's watchdog window in force, ms (0: off; WATCHDOG_FIRED: it fired)."""

    def hardware_error(self, motor: str) -> str | None:
        """What hardware error `motor` latched (overload, overheating, ...), None if none."""
