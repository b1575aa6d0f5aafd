"""Exit statuses of every command line (`edge`, `edge-export`, `python -m export.fp16`), from one mapping.

0: done. 2: input refused before anything moved (any error of the firmware_bridge, calibration, edge
or export trees, or a file the system would not open). 3: a run ended by a safety reaction or by a
non-finite policy output. 128 + the signal's number when interrupted (130 for Ctrl-C, 143 for SIGTERM).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import Callable

from edge.errors import EdgeError, PolicyOutputError

REFUSED, STOPPED, INTERRUPTED = 2, 3, 130


def status_table() -> tuple[tuple[tuple[type[BaseException], ...], int, str], ...]:
    """(error classes, exit status, how the one line begins), first match wins. The lower floors' roots are imported
    here, when an error is mapped, so that starting a command line loads neither calibration/ nor firmware_bridge/."""
    from calibration.errors import CalibrationError
    from firmware_bridge.errors import FirmwareBridgeError
    from firmware_bridge.safety import SafetyTripped

    return (((SafetyTripped,), STOPPED, "safety reaction"),
            ((PolicyOutputError,), STOPPED, "error"),
            ((KeyboardInterrupt,), INTERRUPTED, "interrupted"),
            ((FirmwareBridgeError, CalibrationError, EdgeError, OSError), REFUSED, "error"))


def classify(exc: BaseException) -> tuple[int, str] | None:
    """The exit status for `exc` and the word its line begins with; None when no package raises it on purpose."""
    status, label = next(((s, word) for classes, s, word in status_table() if isinstance(exc, classes)), (None, ""))
    if status is None:
        return None
    if status == INTERRUPTED:  # SafetyStop carries the signal that stopped the run
        status = 128 + int(getattr(exc, "signum", signal.SIGINT))
    return status, label


def exit_status(exc: BaseException) -> int | None:
    """The exit status for `exc`, or None when no package raises it on purpose (a bug)."""
    found = classify(exc)
    return None if found is None else found[0]


def run_command(command: Callable[[], int | None]) -> int:
    """Run a command's body; a mapped error becomes one line on stderr and its exit status, anything else raises."""
    try:
        return int(command() or 0)
    except BaseException as exc:
        try:
            found = classify(exc)
            if found is None:
                raise
            status, label = found
            if isinstance(exc, KeyboardInterrupt):
                print(f"{label} ({exc})" if str(exc) else label, file=sys.stderr)
            else:
                print(f"{label}: {exc}", file=sys.stderr)
            return status
        except KeyboardInterrupt as late:  # Ctrl-C or SIGTERM while the error is reported: stop as it asks
            return 128 + int(getattr(late, "signum", signal.SIGINT))
