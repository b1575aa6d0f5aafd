"""Injected faults: per-servo reply faults, and timed faults written as `ID:KIND@START[+DURATION]`.

KIND is one of drop_reply, corrupt_crc, delay:MS, vanish, overload, overheat, reset; START and DURATION are seconds
from the emulator's start; without a DURATION the fault lasts until the end, except `reset`: the servo loses power
at START for DURATION (default 30 ms) and comes back as from power-up, RAM at its factory values (torque off, Bus
Watchdog off, no hardware error latched). `edge emulate --fault` takes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_bridge.errors import RequestError

KINDS = ("drop_reply", "corrupt_crc", "delay", "vanish", "overload", "overheat", "reset")
RESET_OFF_S = 0.03  # how long a `reset` fault's servo is without power when no DURATION is given
_SPEC = re.compile(r"^(?P<id>\d+):(?P<kind>[a-z_]+)(?::(?P<ms>[0-9.]+))?@(?P<start>[0-9.]+)(?:\+(?P<duration>[0-9.]+))?$")


@dataclass
class Faults:
    """Reply faults pending on one servo; counts are replies affected, -1 means until cleared."""

    drop: int = 0
    corrupt: int = 0
    delay_s: float = 0.0
    delay_count: int = 0
    present: bool = True

    def consume(self) -> tuple[bool, bool, float]:
        """Apply the pending faults to one reply: (dropped, corrupted, extra delay in seconds)."""
        dropped, self.drop = _take(self.drop)
        corrupted, self.corrupt = _take(self.corrupt)
        delayed, self.delay_count = _take(self.delay_count)
        return dropped, corrupted, self.delay_s if delayed else 0.0


def _take(count: int) -> tuple[bool, int]:
    """(fault applies now, remaining count) for a count where -1 means forever."""
    return count != 0, count - 1 if count > 0 else count


@dataclass(frozen=True)
class TimedFault:
    """One scheduled fault: servo id, kind, window in seconds from the emulator's start (end None = open)."""

    servo_id: int
    kind: str
    start_s: float
    duration_s: float | None = None
    delay_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> TimedFault:
        """`3:vanish@2.0+1.5`, `6:overload@5`, `2:delay:30@1+2`; a RequestError names what is wrong."""
        match = _SPEC.match(text.strip())
        if match is None:
            raise RequestError(f"fault {text!r}: expected ID:KIND@START[+DURATION], e.g. 3:vanish@2.0+1.5 "
                             f"(KIND: drop_reply, corrupt_crc, delay:MS, vanish, overload, overheat, reset)")
        kind, ms = match["kind"], match["ms"]
        if kind not in KINDS:
            raise RequestError(f"fault {text!r}: unknown kind {kind!r}; known: drop_reply, corrupt_crc, delay:MS, "
                             f"vanish, overload, overheat, reset")
        if (kind == "delay") != (ms is not None):
            raise RequestError(f"fault {text!r}: " + ("delay needs milliseconds, e.g. 2:delay:30@1" if kind == "delay"
                                                    else f"{kind} takes no :value"))
        duration = float(match["duration"]) if match["duration"] is not None else None
        if duration is not None and duration <= 0:
            raise RequestError(f"fault {text!r}: DURATION must be positive")
        if kind == "reset" and duration is None:
            duration = RESET_OFF_S
        return cls(int(match["id"]), kind, float(match["start"]), duration, float(ms or 0.0))

    def active(self, elapsed_s: float) -> bool:
        """Whether the fault's window covers `elapsed_s` seconds after the start."""
        return self.start_s <= elapsed_s and (self.duration_s is None or elapsed_s < self.start_s + self.duration_s)
