"""Run a policy on a robot: the glue behind `edge run` and `edge demo`.

Checks that the policy fits the robot, runs the fixed-rate loop with a live status line, and on any
exit (end of duration, Ctrl-C, SIGTERM, error) leaves torque off and the port released. Prints the
summary and writes it (exactly the summary keys) when asked.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from edge.chunker import AsyncExecutor, SyncExecutor
from edge.control_loop import LoopConfig, run_loop
from edge.errors import PackageError
from edge.policies.base import PolicyRunner
from edge.rate import check_rate
from edge.robot import Robot
from edge.telemetry import Telemetry, TickRecord, format_summary
from firmware_bridge.safety import SafetyStop


@dataclass
class DriveOptions:
    hz: float
    duration_s: float | None = None
    asynchronous: bool = False
    merge: str = "latest"
    telemetry_path: Path | None = None
    summary_path: Path | None = None
    status: bool = True


def check_compatible(policy: PolicyRunner, robot: Robot) -> None:
    """The policy must take the robot's joint vector as state, act on every joint, and have every other
    input fed by a camera or a constant feature."""
    manifest, config = policy.package.manifest, robot.config
    state = next((i for i in manifest.inputs if i.name == config.features.state), None)
    if state is None or state.shape != [len(config.motors)]:
        raise PackageError(f"the policy's {config.features.state!r} input is "
                           f"{'absent' if state is None else state.shape}, the robot has {len(config.motors)} joints")
    if manifest.action.dim != len(config.motors):
        raise PackageError(f"the policy's action has {manifest.action.dim} values, the robot has "
                           f"{len(config.motors)} joints")
    fed = {config.features.state, *robot.static_features, *robot.cameras}
    unfed = [i.name for i in manifest.inputs if i.name not in fed]
    if unfed:
        raise PackageError(f"nothing feeds the policy input(s) {unfed} on this robot")


def status_line(record: TickRecord, hz: float) -> None:
    """Live status: redrawn 5 times a second on a terminal, one line a second in a log."""
    tty = sys.stderr.isatty()
    if record.tick % max(1, int(hz / 5 if tty else hz)):
        return
    inference = f"{record.inference_ms:6.1f} ms" if record.inference_ms is not None else "      - "
    sys.stderr.write(f"{chr(13) if tty else ''}  t={record.t:6.2f}s  tick {record.tick:5d}  period {record.period_ms:6.2f} ms  "
                     f"inference {inference}  queue {record.queue_depth:3d}  bus errors {record.bus_errors}  "
                     f"safety {record.safety_interventions}   " + ("" if tty else "\n"))
    sys.stderr.flush()


def drive(robot: Robot, policy: PolicyRunner, options: DriveOptions) -> tuple[Telemetry, bool]:
    """Connect `robot`, run the loop, release everything; returns the telemetry and whether it was interrupted."""
    check_rate(options.hz)
    check_compatible(policy, robot)
    executor = AsyncExecutor(policy, merge=options.merge) if options.asynchronous else SyncExecutor(policy)
    telemetry = Telemetry(options.telemetry_path)
    mode = f"asynchronous ({options.merge})" if options.asynchronous else "synchronous"
    print(f"policy {policy.package.path} ({policy.package.manifest.policy_type}) on {policy.backend.describe()}; "
          f"{options.hz:g} Hz, {mode}" + (f"; cameras {', '.join(robot.cameras)}" if robot.cameras else ""),
          file=sys.stderr)
    interrupted = False
    try:
        with robot:
            policy.reset()
            try:
                run_loop(robot, executor, LoopConfig(options.hz, options.duration_s), telemetry,
                         on_tick=(lambda r: status_line(r, options.hz)) if options.status else None)
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
    return telemetry, interrupted

