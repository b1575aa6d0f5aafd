"""Run a policy package on a robot: the glue behind `edge run` and `edge demo`.

Loads the policy, connects the robot, runs the fixed-rate loop with a live status line, and on any
exit (end of duration, Ctrl-C, SIGTERM, error) leaves torque off and the port released.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import edge
from calibration import RobotConfig
from edge.chunker import AsyncExecutor, SyncExecutor
from edge.control_loop import LoopConfig, run_loop
from edge.errors import PackageError
from edge.robot import Robot
from edge.telemetry import Telemetry, TickRecord, format_summary
from firmware_bridge.safety import SafetyStop


@dataclass
class DriveOptions:
    hz: float
    duration_s: float | None = None
    asynchronous: bool = False
    merge: str = "latest"
    backend: str = "auto"
    telemetry_path: Path | None = None
    summary_path: Path | None = None
    status: bool = True
    static_features: Mapping[str, np.ndarray] = field(default_factory=dict)
    bus_timeout_slack_ms: float = 3.0


def check_compatible(policy: edge.PolicyRunner, robot: RobotConfig, static: Mapping[str, np.ndarray]) -> None:
    """The package must take exactly the robot's joint vector (and the given static features) as state."""
    manifest = policy.package.manifest
    state = next((i for i in manifest.inputs if i.name == robot.features.state), None)
    if state is None or state.shape != [len(robot.motors)]:
        raise PackageError(f"the policy's {robot.features.state!r} input is "
                           f"{'absent' if state is None else state.shape}, the robot has {len(robot.motors)} joints")
    if manifest.action.dim != len(robot.motors):
        raise PackageError(f"the policy's action has {manifest.action.dim} values, the robot has "
                           f"{len(robot.motors)} joints")
    unfed = [i.name for i in manifest.inputs if i.name != robot.features.state and i.name not in static
             and i.kind != "image"]
    if unfed:
        raise PackageError(f"nothing feeds the policy input(s) {unfed} on this robot")


def _status_line(record: TickRecord, hz: float) -> None:
    """Live status: redrawn 5 times a second on a terminal, one line a second in a log."""
    tty = sys.stderr.isatty()
    if record.tick % max(1, int(hz / 5 if tty else hz)):
        return
    inference = f"{record.inference_ms:6.1f} ms" if record.inference_ms is not None else "      - "
    sys.stderr.write(f"{chr(13) if tty else ''}  t={record.t:6.2f}s  tick {record.tick:5d}  period {record.period_ms:6.2f} ms  "
                     f"inference {inference}  queue {record.queue_depth:3d}  bus errors {record.bus_errors}  "
                     f"safety {record.safety_interventions}   " + ("" if tty else "\n"))
    sys.stderr.flush()


def drive(robot_config: RobotConfig, package: str | Path, options: DriveOptions) -> dict[str, Any]:
    """Run the loop and return the summary (also printed, and written to `summary_path` if given)."""
    policy = edge.load_policy(package, backend=options.backend)
    check_compatible(policy, robot_config, options.static_features)
    executor = (AsyncExecutor(policy, merge=options.merge) if options.asynchronous else SyncExecutor(policy))
    telemetry = Telemetry(options.telemetry_path)
    mode = f"asynchronous ({options.merge})" if options.asynchronous else "synchronous"
    print(f"policy {package} ({policy.package.manifest.policy_type}) on {policy.backend.describe()}; "
          f"{options.hz:g} Hz, {mode}", file=sys.stderr)
    interrupted = False
    try:
        with Robot(robot_config, static_features=options.static_features,
                   bus_timeout_slack_ms=options.bus_timeout_slack_ms) as robot:
            policy.reset()
            try:
                run_loop(robot, executor, LoopConfig(options.hz, options.duration_s), telemetry,
                         on_tick=(lambda r: _status_line(r, options.hz)) if options.status else None)
            except (KeyboardInterrupt, SafetyStop):
                interrupted = True
    finally:
        executor.close()
        telemetry.close()
        if options.status:
            sys.stderr.write("\n")
    summary = telemetry.summary()
    print(("interrupted: torque off, port released\n" if interrupted else "") + format_summary(summary))
    if options.summary_path is not None:
        Path(options.summary_path).write_text(json.dumps(summary, indent=2))
    return summary
