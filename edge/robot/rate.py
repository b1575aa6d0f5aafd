"""Fixed-rate timing with absolute deadlines: tick k starts at start + k * period, never drifting.

Sleeps until shortly before the deadline, then spins for precision. A tick whose work runs past the
next deadline is a missed deadline and is counted; when a whole period or more is lost, the schedule
skips those ticks rather than bursting to catch up.
"""

from __future__ import annotations

import math
import time

from edge.errors import OptionError

MAX_HZ = 1000.0  # a sync read and a sync write of an arm's servos take most of a millisecond on the bus


def check_rate(hz: float) -> float:
    """`hz` if it is a control rate the loop can keep (0 < hz <= MAX_HZ), else OptionError."""
    if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not math.isfinite(hz) or not 0 < hz <= MAX_HZ:
        raise OptionError(f"control rate must be in (0, {MAX_HZ:g}] Hz, got {hz!r}")
    return float(hz)


class RateKeeper:
    def __init__(self, hz: float, spin_s: float = 0.0015, clock=time.perf_counter):  # noqa: ANN001
        self.period = 1.0 / check_rate(hz)
        self.spin_s = spin_s
        self.clock = clock
        self.start = clock()
        self.tick = 0
        self.missed = 0

    @property
    def deadline(self) -> float:
        return self.start + self.tick * self.period

    def wait(self) -> float:
        """Block until the next tick's deadline; returns that deadline (clock seconds)."""
        self.tick += 1
        deadline = self.deadline
        now = self.clock()
        if now > deadline:  # the previous tick overran its period
            skipped = int((now - deadline) // self.period)
            self.missed += 1 + skipped
            self.tick += skipped
            deadline = self.deadline
        remaining = deadline - self.clock() - self.spin_s
        if remaining > 0:
            time.sleep(remaining)
        while self.clock() < deadline:
            pass
        return deadline
