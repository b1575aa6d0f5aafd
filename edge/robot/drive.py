"""Run a policy on a robot: the glue behind `edge run` and `edge demo`.

Checks that the policy fits the robot (joints, cameras, constant features) before anything is opened, runs the
fixed-rate loop with a live status line, and on any exit (end of duration, Ctrl-C, SIGTERM, a safety reaction,
an error) leaves the robot released. Prints the summary and writes it (exactly the summary keys) when asked; the
last lines say how the run ended. A safety reaction is re-raised as `SafetyTripped` (also when Ctrl-C comes after
it), Ctrl-C as KeyboardInterrupt, so the CLI can turn them into exit statuses.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.errors import PackageError
from edge.robot.control_loop import LoopConfig, run_loop
from edge.robot.executors import AsyncExecutor, SyncExecutor
from edge.robot.rate import check_rate
from edge.robot.remote import RemotePlanner, ServerWatch
from edge.robot.robot import Robot
from edge.robot.telemetry import Telemetry, TickRecord, format_summary
from edge.runtime.policies.base import PolicyRunner
from firmware_bridge.safety import SafetyTripped


@dataclass
class DriveOptions:
    hz: float
    duration_s: float | None = None
    asynchronous: bool = False
    merge: str = "latest"
    telemetry_path: Path | None = None
    summary_path: Path | None = None
    status: bool = True


def check_compatible(policy: PolicyRunner | RemotePlanner, robot: Robot) -> None:
    """The policy must take the robot's joint vector as state, act on every joint, get each camera's frames at its
    input's exact shape, and have every other input fed by a constant feature of the right shape."""
    manifest, config = policy.package.manifest, robot.config
    inputs = {i.name: i for i in manifest.inputs}
    state = inputs.get(config.features.state)
    if state is None or state.shape != [len(config.motors)]:
        raise PackageError(f"the policy's {config.features.state!r} input is "
                           f"{'absent' if state is None else state.shape}, the robot has {len(config.motors)} joints")
    if manifest.action.dim != len(config.motors):
        raise PackageError(f"the policy's action has {manifest.action.dim} values, the robot has "
                           f"{len(config.motors)} joints")
    for name, cam in robot.cameras.items():
        wanted = inputs.get(name)
        if wanted is None or wanted.kind != "image":
            raise PackageError(f"camera {name} feeds no image input of the policy (its image inputs: "
                               f"{[i.name for i in manifest.inputs if i.kind == 'image']})")
        if tuple(wanted.shape) != tuple(cam.shape):
            raise PackageError(f"camera {name} delivers {tuple(cam.shape)} frames, the policy's input expects "
                               f"{tuple(wanted.shape)} (set width/height/rotation in the robot file)")
    for name, value in robot.static_features.items():
        wanted = inputs.get(name)
        if wanted is None:
            raise PackageError(f"feature {name} is not an input of the policy ({list(inputs)})")
        if list(value.shape) != list(wanted.shape):
            raise PackageError(f"feature {name} has shape {list(value.shape)}, the policy's input expects "
                               f"{list(wanted.shape)}")
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
    ages = "".join(f"  frame age {age:5.0f} ms" for age in (record.frame_age_ms or {}).values())
    sys.stderr.write(f"{chr(13) if tty else ''}  t={record.t:6.2f}s  tick {record.tick:5d}  period {record.period_ms:6.2f} ms  "
                     f"inference {inference}  queue {record.queue_depth:3d}  bus errors {record.bus_errors}  "
                     f"safety {record.safety_interventions}{ages}   " + ("" if tty else "\n"))
    sys.stderr.flush()


def how_it_ended(robot: Robot, ended: BaseException | None) -> str:
    """The closing line: a clean end, an interruption, or the safety reaction and what it left in force."""
    if robot.tripped is not None:
        reaction = robot.config.safety.reaction
        delays = [a.safety.reaction_delay_s for a in robot.arms if a.safety.reaction_delay_s is not None] or [0.0]
        state = ("torque left ON, holding the last safe goal (the Bus Watchdog stops any motion once this process "
                 "is gone); `edge reboot` clears latched hardware errors" if reaction == "hold" else "torque off")
        return (f"stopped by a safety reaction ({reaction}, {max(delays) * 1e3:.0f} ms after the first fault): "
                f"{robot.tripped}; no rest-pose motion; {state}; port released")
    if ended is not None:
        return f"interrupted ({ended or 'Ctrl-C'}): torque off, port released"
    return "run complete: torque off, port released"


def drive(robot: Robot, policy: PolicyRunner | RemotePlanner, options: DriveOptions,
          on_tick: Callable[[TickRecord], None] | None = None) -> Telemetry:
    """Connect `robot`, run the loop, release everything; returns the telemetry of a run that ended normally.

    Raises SafetyTripped if a safety reaction ended the run, KeyboardInterrupt (SafetyStop for a signal) if the
    user did, after the robot was released and the summary printed. `on_tick` sees every tick's record.
    """
    check_rate(options.hz)
    check_compatible(policy, robot)
    executor = AsyncExecutor(policy, merge=options.merge) if options.asynchronous else SyncExecutor(policy)
    remote = isinstance(policy, RemotePlanner)
    if remote:  # a lost server is a safety reaction; late chunks are counted
        executor = ServerWatch(executor, policy, robot)
    telemetry = Telemetry(options.telemetry_path, cameras=list(robot.cameras))
    mode = f"asynchronous ({options.merge})" if options.asynchronous else "synchronous"
    where = policy.describe() if remote else policy.backend.describe()
    print(f"policy {policy.package.path} ({policy.package.manifest.policy_type}) on {where}; "
          f"{options.hz:g} Hz, {mode}" + (f"; cameras {', '.join(robot.cameras)}" if robot.cameras else ""),
          file=sys.stderr)

    def tick(record: TickRecord) -> None:
        if options.status:
            status_line(record, options.hz)
        if on_tick is not None:
            on_tick(record)

    ended: BaseException | None = None
    try:
        try:
            with robot:
                print(robot.describe(), file=sys.stderr)
                policy.reset()
                gc.collect()
                gc.freeze()  # start-up objects out of the collector's scans: a tick leaves nothing for it to walk
                try:
                    run_loop(robot, executor, LoopConfig(options.hz, options.duration_s), telemetry, on_tick=tick)
                finally:
                    gc.unfreeze()
        except (SafetyTripped, KeyboardInterrupt) as exc:
            ended = exc
        finally:
            executor.close()
            telemetry.close()
            if options.status:
                sys.stderr.write("\n")
        summary = telemetry.summary()
        print(format_summary(summary))
        if remote:
            print(executor.summary())
        if options.summary_path is not None:
            Path(options.summary_path).write_text(json.dumps(summary, indent=2))
        print(how_it_ended(robot, ended))
    except KeyboardInterrupt:  # Ctrl-C while reporting
        if robot.tripped is None:
            raise
    if robot.tripped is not None:  # what ended the run, even if Ctrl-C came after the reaction
        raise SafetyTripped(robot.tripped)
    if ended is not None:
        raise ended
    return telemetry
