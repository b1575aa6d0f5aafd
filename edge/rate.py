"""Fixed-rate timing with absolute deadlines: tick k starts at start + k * period, never drifting.

Sleeps until shortly before the deadline, then spins for precision. A tick whose work runs past the
next deadline is a missed deadline and is counted; when a whole period or more is lost, the schedule
skips those ticks rather than bursting to catch up.
"""

from __future__ import annotations

import time


class RateKeeper:
    def __init__(self, hz: float, spin_s: float = 0.0015, clock=time.perf_counter):  # noqa: ANN001
        if not hz > 0:
            raise ValueError(f"control rate must be positive, got {hz}")
        self.period = 1.0 / hz
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
