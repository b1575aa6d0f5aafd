"""`edge run --display`: camera frames and joint states/actions streamed to a rerun viewer, as LeRobot's
`--display_data` does (lerobot/utils/visualization_utils.py: `init_rerun`, `log_rerun_data`).

Entities are LeRobot's: `observation.<joint>.pos` and `action.<joint>.pos` scalars, one image per camera under its
feature key, on a `frame` timeline counting the ticks shown. With an address the SDK connects to a viewer
there (`rerun+http://IP:PORT/proxy`, what `rerun` listens on by default at port 9876); without one it spawns a
local viewer (needs a display: on a headless robot give the workstation's address). The viewer's version must
match the SDK's (rerun-sdk 0.26.x, LeRobot's pin: `pip install rerun-sdk==<the robot's version>` on the viewer's
side). On the control thread a tick only puts references into a bounded queue; a thread logs them. When the
thread (or the network) falls behind and the queue is full, that tick is not shown (counted in `dropped`).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Mapping

import numpy as np

from edge.robot.telemetry import TickRecord

QUEUE_TICKS = 8  # ticks the viewer thread may lag before ticks are dropped from the view


def import_rerun() -> Any:
    """rerun-sdk, or an ImportError saying how to get it."""
    try:
        import rerun as rr
    except ImportError:
        raise ImportError("--display needs rerun-sdk: pip install 'edge-policy-runtime[display]'") from None
    return rr


class RerunDisplay:
    """The live view; `__call__` is the loop's frame hook. A context manager: connects on entry, flushes on exit."""

    def __init__(self, names: list[str], cameras: list[str], ip: str | None = None, port: int = 9876,
                 session: str = "edge_run") -> None:
        self.names, self.cameras, self.ip, self.port, self.session = names, cameras, ip, port, session
        self.dropped = 0
        self._count = 0  # the `frame` timeline: ticks shown since the start (episodes and resets included)
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_TICKS)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        return None if self.ip is None else f"rerun+http://{self.ip}:{self.port}/proxy"

    def __enter__(self) -> RerunDisplay:
        rr = self._rr = import_rerun()
        rr.init(self.session)
        if self.url is not None:
            rr.connect_grpc(url=self.url)
        else:
            rr.spawn(memory_limit=os.getenv("LEROBOT_RERUN_MEMORY_LIMIT", "10%"))
        self._thread = threading.Thread(target=self._log, name="rerun display", daemon=True)
        self._thread.start()
        return self

    def __call__(self, record: TickRecord, observation: Mapping[str, np.ndarray], goal: np.ndarray) -> None:
        action = goal if record.action is None else record.action
        self._count += 1
        try:
            self._queue.put_nowait((self._count - 1, record.present, action, observation))
        except queue.Full:
            self.dropped += 1

    def _log(self) -> None:
        rr = self._rr
        while True:
            item = self._queue.get()
            if item is None:
                return
            tick, present, action, observation = item
            rr.set_time("frame", sequence=tick)
            for name, value in zip(self.names, np.asarray(present, np.float64).tolist()):
                rr.log(f"observation.{name}", rr.Scalars(value))
            for name, value in zip(self.names, np.asarray(action, np.float64).tolist()):
                rr.log(f"action.{name}", rr.Scalars(value))
            for key in self.cameras:
                rr.log(key, rr.Image(observation[key]))

    def __exit__(self, *exc: object) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)
            self._rr.disconnect()
