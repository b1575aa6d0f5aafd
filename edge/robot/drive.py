"""Run a policy on a robot: the glue behind `edge run` and `edge demo`.

Checks that the policy fits the robot (joints, cameras, constant features) and that every output file can be
written before anything is opened, runs the fixed-rate loop with a live status line, and on any exit (end of
duration, Ctrl-C, SIGTERM, SIGHUP, a safety reaction, a non-finite policy output, an error) leaves the robot
released. Prints the summary and writes it (exactly the summary keys) when asked; the last line says how the run
ended, and is the one place that says why it stopped. A safety reaction is re-raised as `SafetyTripped` (also when
Ctrl-C comes after it), a signal as KeyboardInterrupt, so the CLI can turn them into exit statuses; a result file
that could not be written after the arm moved never replaces them (`ResultsNotWritten` only after a clean run).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from edge.errors import PackageError, PolicyOutputError, ResultsNotWritten
from edge.robot.control_loop import LoopConfig, run_loop
from edge.robot.executors import AsyncExecutor, SyncExecutor
from edge.robot.rate import check_rate
from edge.robot.robot import Robot
from edge.robot.telemetry import Telemetry, TickRecord, format_summary
from edge.runtime.files import check_writable, write_atomic
from edge.runtime.policies.base import PolicyRunner
from firmware_bridge.safety import SafetyTripped

if TYPE_CHECKING:
    from edge.robot.record.episodes import RecordOptions


@dataclass
class DriveOptions:
    hz: float
    duration_s: float | None = None
    asynchronous: bool = False
    merge: str = "latest"
    telemetry_path: Path | None = None
    summary_path: Path | None = None
    status: bool = True
    record: RecordOptions | None = None  # `--record`: episodes recorded as a LeRobot dataset (edge/robot/record/)
    display: bool = False  # `--display`: stream to a rerun viewer (edge/robot/record/display.py)
    display_ip: str | None = None
    display_port: int = 9876


def check_compatible(policy: PolicyRunner, robot: Robot) -> None:
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


def check_outputs(options: DriveOptions, robot: Robot) -> None:
    """Refuse an output file that could not be written, a recording or live view that cannot work, before anything
    is connected (CLIError / OptionError, exit 2)."""
    from edge.errors import CLIError

    for what, path in (("--telemetry", options.telemetry_path), ("--summary", options.summary_path)):
        if path is not None:
            check_writable(path, what)
    if options.record is not None:
        from edge.robot.record.episodes import check_recording

        check_recording(options.record, options.hz, robot.cameras)
    if options.display:
        from edge.robot.record.display import import_rerun

        try:
            import_rerun()
        except ImportError as exc:
            raise CLIError(str(exc)) from None
        if options.display_ip is None and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise CLIError("--display: no screen here to spawn a viewer on; run `rerun` on your workstation and "
                           "give its address: --display-ip IP [--display-port 9876]")


def _loop(robot: Robot, executor: SyncExecutor | AsyncExecutor, options: DriveOptions, telemetry: Telemetry,
          tick: Callable[[TickRecord], None]) -> None:
    """One continuous run, or the recorded episodes; with the live view when asked."""
    with ExitStack() as stack:
        display = None
        if options.display:
            from edge.robot.record.display import RerunDisplay

            display = stack.enter_context(RerunDisplay(robot.config.position_names, list(robot.cameras),
                                                       options.display_ip, options.display_port))
        if options.record is None:
            run_loop(robot, executor, LoopConfig(options.hz, options.duration_s), telemetry, on_tick=tick,
                     on_frame=display)
        else:
            from edge.robot.record.episodes import record_episodes

            cameras = {name: tuple(cam.shape) for name, cam in robot.cameras.items()}
            record_episodes(robot, executor, options.hz, telemetry, tick, options.record, cameras,
                            robot.config.position_names, display)


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
        limp = sorted(m for a in robot.arms for m in a.safety.limp)
        state = ("torque left ON, holding the last safe goal (the Bus Watchdog stops any motion once this process "
                 "is gone); `edge reboot` clears latched hardware errors" if reaction == "hold" else "torque off")
        if limp:
            state += f"; no torque on {', '.join(limp)}"
        return (f"stopped by a safety reaction ({reaction}, {max(delays) * 1e3:.0f} ms after the first fault): "
                f"{robot.tripped}; no rest-pose motion; {state}; port released")
    if isinstance(ended, PolicyOutputError):
        return f"stopped: {ended}; torque off, port released"
    if ended is not None:
        return f"interrupted ({ended or 'Ctrl-C'}): torque off, port released"
    return "run complete: torque off, port released"


def _say(text: str, stream: str = "stdout") -> None:
    """Print a line of the end-of-run report; a terminal that is gone (SIGHUP) is replaced by /dev/null, so that
    neither this line nor the interpreter's last flush turns into another exit status."""
    try:
        print(text, file=getattr(sys, stream), flush=True)
    except OSError:
        setattr(sys, stream, open(os.devnull, "w"))


def drive(robot: Robot, policy: PolicyRunner, options: DriveOptions,
          on_tick: Callable[[TickRecord], None] | None = None) -> Telemetry:
    """Connect `robot`, run the loop, release everything; returns the telemetry of a run that ended normally.

    Raises SafetyTripped if a safety reaction ended the run, KeyboardInterrupt (SafetyStop for a signal) if the
    user did, PolicyOutputError for a non-finite action, after the robot was released and the summary printed
    (each marked `reported`: the closing line already said it); ResultsNotWritten after a clean run whose summary
    or telemetry could not be written. `on_tick` sees every tick's record.
    """
    check_rate(options.hz)
    check_outputs(options, robot)
    check_compatible(policy, robot)
    executor = AsyncExecutor(policy, merge=options.merge) if options.asynchronous else SyncExecutor(policy)
    telemetry = Telemetry(options.telemetry_path, cameras=list(robot.cameras))
    mode = f"asynchronous ({options.merge})" if options.asynchronous else "synchronous"
    print(f"policy {policy.package.path} ({policy.package.manifest.policy_type}) on {policy.backend.describe()}; "
          f"{options.hz:g} Hz, {mode}" + (f"; cameras {', '.join(robot.cameras)}" if robot.cameras else ""),
          file=sys.stderr)

    def tick(record: TickRecord) -> None:
        if options.status:
            status_line(record, options.hz)
        if on_tick is not None:
            on_tick(record)

    ended: BaseException | None = None
    lost: list[str] = []
    try:
        try:
            with robot:
                print(robot.describe(), file=sys.stderr)
                policy.reset()
                gc.collect()
                gc.freeze()  # start-up objects out of the collector's scans: a tick leaves nothing for it to walk
                try:
                    _loop(robot, executor, options, telemetry, tick)
                finally:
                    gc.unfreeze()
        except (SafetyTripped, KeyboardInterrupt, PolicyOutputError) as exc:
            ended = exc
        finally:
            executor.close()
            telemetry.close()
            if options.status:
                _say("", "stderr")
        summary = telemetry.summary()
        _say(format_summary(summary))
        if telemetry.write_error is not None:
            lost.append(f"telemetry {options.telemetry_path} is incomplete: {telemetry.write_error}")
        if options.summary_path is not None:
            try:
                write_atomic(Path(options.summary_path), json.dumps(summary, indent=2))
            except OSError as exc:
                lost.append(f"summary {options.summary_path} not written: {exc.strerror or exc}")
        for line in lost:
            _say(f"error: {line}", "stderr")
        _say(how_it_ended(robot, ended))
    except KeyboardInterrupt:  # Ctrl-C while reporting
        if robot.tripped is None and ended is None:
            raise
    if robot.tripped is not None:  # what ended the run, even if Ctrl-C came after the reaction
        raise _reported(SafetyTripped(robot.tripped))
    if ended is not None:
        raise _reported(ended)
    if lost:
        raise _reported(ResultsNotWritten("; ".join(lost) + " (the run itself completed)"))
    return telemetry


def _reported(exc: BaseException) -> BaseException:
    """Mark `exc` as said already (by the closing lines), so the command line adds no second line with it."""
    exc.reported = True  # type: ignore[attr-defined]
    return exc
