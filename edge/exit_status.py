"""Exit statuses of every command line (`edge`, `edge-export`, `python -m export.fp16`), from one mapping.

0: done. 2: input refused before anything moved (any error of the firmware_bridge, calibration, edge
or export trees, or a file the system would not open). 3: a run ended by a safety reaction or by a
non-finite policy output. 4: a run completed, but a result file could not be written. 128 + the signal's
number when interrupted (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; `signals_interrupt` makes the last two act as
Ctrl-C). Anything else is a bug and keeps its traceback. An error marked `reported` (its command already
printed its closing line, e.g. `edge run`'s "stopped by a safety reaction ...") gets no second line.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Callable, Iterator

from edge.errors import EdgeError, PolicyOutputError, ResultsNotWritten

REFUSED, STOPPED, RESULTS_LOST, INTERRUPTED = 2, 3, 4, 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def status_table() -> tuple[tuple[tuple[type[BaseException], ...], int, str], ...]:
    """(error classes, exit status, how the one line begins), first match wins. The lower floors' roots are imported
    here, when an error is mapped, so that starting a command line loads neither calibration/ nor firmware_bridge/."""
    from calibration.errors import CalibrationError
    from firmware_bridge.errors import FirmwareBridgeError
    from firmware_bridge.safety import SafetyTripped

    return (((SafetyTripped,), STOPPED, "safety reaction"),
            ((PolicyOutputError,), STOPPED, "error"),
            ((KeyboardInterrupt,), INTERRUPTED, "interrupted"),
            ((ResultsNotWritten,), RESULTS_LOST, "error"),
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
            if getattr(exc, "reported", False):
                pass
            elif isinstance(exc, KeyboardInterrupt):
                print(f"{label} ({exc})" if str(exc) else label, file=sys.stderr)
            else:
                print(f"{label}: {exc}", file=sys.stderr)
            return status
        except KeyboardInterrupt as late:  # Ctrl-C or SIGTERM while the error is reported: stop as it asks
            return 128 + int(getattr(late, "signum", signal.SIGINT))


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP (a `kill`, a dropped SSH session) raise KeyboardInterrupt as Ctrl-C
    does, carrying the signal's number (exit 128 + N), so every `finally` and `with` of a command runs: servos are
    released in order, calibration registers restored. Only the first of them raises; the ones that come while it
    unwinds are ignored, so a second Ctrl-C cannot cut a restore short. A safety layer installs its own meanwhile."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signum)
        interrupt = KeyboardInterrupt(f"received {signal.Signals(signum).name}")
        interrupt.signum = signum  # type: ignore[attr-defined]
        raise interrupt

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
