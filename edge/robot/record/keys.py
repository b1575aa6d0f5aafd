"""LeRobot's recording keys from the terminal: → end the episode early, ← re-record it, Esc stop recording.

LeRobot listens with pynput, which needs a display; a robot is usually reached over SSH, so here a thread reads
the controlling terminal in cbreak mode (keys arrive one by one, Ctrl-C still interrupts) and sets the same three
events LeRobot's `init_keyboard_listener` does. The terminal's settings are restored on close. Without a terminal
on stdin there are no keys (the episodes run their full time).
"""

from __future__ import annotations

import os
import select
import sys
import threading
from dataclasses import dataclass, field
from typing import IO

RIGHT, LEFT, ESCAPE = b"\x1b[C", b"\x1b[D", b"\x1b"
ESCAPE_WAIT_S = 0.05  # a lone ESC: no '[' follows within this time (an arrow's bytes arrive together)


@dataclass
class RecordEvents:
    """LeRobot's `events` dict as flags: set by the key thread, read and cleared by the episode loop."""

    exit_early: threading.Event = field(default_factory=threading.Event)
    rerecord_episode: bool = False
    stop_recording: bool = False

    def key(self, sequence: bytes) -> str | None:
        """Apply one key (its byte sequence); returns what it did, for the log line, or None if it means nothing."""
        if sequence == RIGHT:
            self.exit_early.set()
            return "Right arrow key pressed. Exiting loop..."
        if sequence == LEFT:
            self.rerecord_episode = True
            self.exit_early.set()
            return "Left arrow key pressed. Exiting loop and rerecord the last episode..."
        if sequence == ESCAPE:
            self.stop_recording = True
            self.exit_early.set()
            return "Escape key pressed. Stopping data recording..."
        return None


def split_keys(data: bytes) -> list[bytes]:
    """Split bytes read from a terminal into keys: ESC [ X sequences, a lone ESC, or single bytes."""
    keys, i = [], 0
    while i < len(data):
        if data[i : i + 2] == b"\x1b[" and i + 2 < len(data):
            keys.append(data[i : i + 3])
            i += 3
        else:
            keys.append(data[i : i + 1])
            i += 1
    return keys


class TerminalKeys:
    """A daemon thread turning the terminal's keys into `events`; a context manager (restores the terminal)."""

    def __init__(self, events: RecordEvents, stream: IO | None = None, log: IO | None = None) -> None:
        self.events = events
        self.stream = sys.stdin if stream is None else stream
        self.log = sys.stderr if log is None else log
        self.active = False
        self._saved: list | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TerminalKeys:
        try:
            fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            return self
        if not os.isatty(fd):
            return self
        import termios
        import tty

        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)  # no line buffering, no echo; signals (Ctrl-C) stay on
        self.active = True
        self._thread = threading.Thread(target=self._read, name="recording keys", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [], ESCAPE_WAIT_S if pending else None)
            if self._stop_r in ready:
                return
            if not ready:  # a lone ESC (nothing followed it)
                data, pending = pending, b""
            else:
                data = pending + os.read(self._fd, 64)
                pending = b""
                if data.endswith(b"\x1b") or data.endswith(b"\x1b["):  # maybe the start of an arrow: wait a bit
                    cut = data.rfind(b"\x1b")
                    data, pending = data[:cut], data[cut:]
            for key in split_keys(data):
                said = self.events.key(key)
                if said:
                    self.log.write(f"\n{said}\n")
                    self.log.flush()

    def __exit__(self, *exc: object) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        os.close(self._stop_r)
        os.close(self._stop_w)
