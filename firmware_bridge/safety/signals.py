"""SIGINT/SIGTERM/SIGHUP while a safety layer runs: they raise in the control loop, so shutdown runs in order."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType


class SafetyStop(KeyboardInterrupt):
    """Raised in the control loop when SIGINT/SIGTERM/SIGHUP arrives; the `with` block then shuts down."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class StopSignals:
    """Installs one handler for SIGINT, SIGTERM and SIGHUP (process-wide: Ctrl-C, `kill`, a dropped SSH session)
    and puts the previous handlers back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}

    def install(self, handler: Callable[[int, FrameType | None], None]) -> None:
        """`handler` for the three signals until `restore()`."""
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, handler)

    def restore(self) -> None:
        """The handlers in force before `install()` (no-op if none was installed)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
