"""The error window: when a fault on the bus (or reported from outside it) has lasted long enough to react.

A fault opens an error episode; `recovery_reads` consecutive good reads, with no outside fault pending, close it.
One still open `window_s` after it began trips the reaction, checked at every observe/step (so at most one tick
after the window). A problem that clears inside the window needs nothing. Once tripped, it stays tripped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from firmware_bridge.errors import FirmwareBridgeError


class SafetyTripped(FirmwareBridgeError):
    """A run ended by a safety reaction; the message says what tripped (a lost servo, a stale camera, ...) and the
    reaction stays in force."""


class FaultWindow:
    """Error-episode state of one safety layer; `react(cause)` is called once, when the reaction is due."""

    def __init__(self, window_s: float, recovery_reads: int, react: Callable[[str], None]) -> None:
        self.window_s = window_s
        self.recovery_reads = recovery_reads
        self.react = react
        self.tripped: str | None = None  # why the reaction was taken, None while running normally
        self.reaction_delay_s: float | None = None  # first error -> reaction
        self._since: float | None = None  # when the open episode began
        self._cause = ""
        self._external: dict[str, str] = {}  # source -> problem, faults reported from outside the bus
        self._good_reads = 0

    def fault(self, cause: str) -> None:
        """A failed transaction or hardware error: opens (or extends) the episode; reacts if the window is over."""
        if self._since is None:
            self._since = time.monotonic()
        self._cause = cause
        self._good_reads = 0
        self.check()

    def good_read(self) -> None:
        """A read that succeeded without alerts: enough of them in a row close the episode."""
        if self._since is not None:
            self._good_reads += 1
            if self._good_reads >= self.recovery_reads and not self._external:
                self._since = None

    def report(self, source: str, problem: str | None) -> None:
        """A fault from outside the bus (`problem=None`: that source is fine again)."""
        if problem is None:
            self._external.pop(source, None)
            return
        self._external[source] = problem
        self.fault(f"{source}: {problem}")

    def trip(self, cause: str) -> None:
        """React now; no-op if already tripped."""
        if self.tripped is None:
            if self._since is None:
                self._since = time.monotonic()
            self._cause = cause
            self._trip()

    def check(self) -> None:
        """React if an episode has been open for the whole window."""
        if self.tripped is None and self._since is not None and time.monotonic() - self._since >= self.window_s:
            self._trip()

    def _trip(self) -> None:
        self.tripped = self._cause
        self.reaction_delay_s = time.monotonic() - (self._since or 0.0)
        self.react(self._cause)
