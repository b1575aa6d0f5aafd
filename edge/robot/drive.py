"""Run a policy on a robot: the glue behind `edge run` and `edge demo`.

Checks that the policy fits the robot (joints, cameras, constant features), the rates (the servo loop at least
the policy's own fps; asynchronously, a chunk latency measured on synthetic observations that one chunk in flight
can cover) and that every output file can be written before anything is opened, runs the fixed-rate loop with a
live status line, and on any exit (end of duration, Ctrl-C, SIGTERM, SIGHUP, a safety reaction, a non-finite
policy output, an error) leaves the robot released. Prints the summary and writes it (exactly the summary keys)
when asked; the last line says how the run ended, and is the one place that says why it stopped. A safety
reaction is re-raised as `SafetyTripped` (also when Ctrl-C comes after it), a signal as KeyboardInterrupt, so the
CLI can turn them into exit statuses; a result file that could not be written after the arm moved never replaces
them (`ResultsNotWritten` only after a clean run).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from edge.errors import OptionError, PackageError, PolicyOutputError, ResultsNotWritten
from edge.robot.chunks import ticks_for
from edge.robot.control_loop import Executor, LoopConfig, run_loop
from edge.robot.executors import AsyncExecutor, SyncExecutor
from edge.robot.joint_names import joint_order
from edge.robot.interpolation import PolicyRate, check_rates
from edge.robot.rate import check_rate
from edge.robot.remote import HoldCounter, RemotePlanner, ServerWatch
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


def check_compatible(policy: PolicyRunner | RemotePlanner, robot: Robot) -> None:
    """The policy must take the robot's joint vector as state, act on every joint (by the dataset's joint names when
    the package has them: another order is mapped, other names refused), get each camera's frames at its input's
    exact shape, and have every other input fed by a constant feature of the right shape."""
    manifest, config = policy.package.manifest, robot.config
    inputs = {i.name: i for i in manifest.inputs}
    state = inputs.get(config.features.state)
    if state is None or state.shape != [len(config.motors)]:
        raise PackageError(f"the policy's {config.features.state!r} input is "
                           f"{'absent' if state is None else state.shape}, the robot has {len(config.motors)} joints")
    if manifest.action.dim != len(config.motors):
        raise PackageError(f"the policy's action has {manifest.action.dim} values, the robot has "
                           f"{len(config.motors)} joints")
    robot.joint_order = joint_order(manifest.dataset, config.motor_names)
    if robot.joint_order.note:
        print(f"note: {robot.joint_order.note}", file=sys.stderr)
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
        raise PackageError(f"nothing feeds the policy input(s) {unfed} on this robot: give each a constant with "
                           f"--feature NAME=V1,V2,... (e.g. --feature {unfed[0]}=0,...), or, for an image, a camera "
                           "in the robot file's cameras:")


def run_meta(policy: PolicyRunner, robot: Robot, options: DriveOptions) -> dict:
    """What `edge report` needs to label a run: joints in the order the records hold them, units, rate, policy."""
    motors = robot.policy_joints
    return {"policy": str(policy.package.path), "policy_type": policy.package.manifest.policy_type, "hz": options.hz,
            "joints": [m.name for m in motors], "units": [m.norm_mode.unit for m in motors],
            "mode": f"asynchronous ({options.merge})" if options.asynchronous else "synchronous"}


def policy_rate(policy: PolicyRunner, servo_hz: float) -> float:
    """The rate the policy advances at: the package's dataset.fps (refused above the servo rate), else the servo
    rate with one warning."""
    dataset = policy.package.manifest.dataset
    fps = None if dataset is None else dataset.fps
    if fps is None:
        print(f"warning: the package records no fps (its actions' rate; edge-export --fps): the policy advances at "
              f"the servo rate, {servo_hz:g} Hz", file=sys.stderr)
        return servo_hz
    check_rates(servo_hz, fps)
    return float(fps)


def synthetic_observation(policy: PolicyRunner) -> dict[str, np.ndarray]:
    """One observation of the policy's input shapes, states at the middle of their training statistics (so no
    out-of-distribution warning), images black: enough to time a chunk before anything moves."""
    def middle(inp) -> np.ndarray:  # noqa: ANN001
        stats = inp.normalization.stats
        for lo, hi in (("mean", "mean"), ("min", "max"), ("q01", "q99"), ("q10", "q90")):
            if lo in stats and hi in stats:
                return ((np.array(stats[lo]) + np.array(stats[hi])) / 2).reshape(inp.shape).astype(np.float32)
        return np.zeros(inp.shape, np.float32)

    return {i.name: np.zeros(i.shape, np.uint8) if i.kind == "image" else middle(i)
            for i in policy.package.manifest.inputs}


def measure_delay(policy: PolicyRunner, policy_hz: float, chunks: int = 4) -> int:
    """D_est from chunks planned on a synthetic observation (the cold first one excluded); refuses (OptionError) a
    rate at which one chunk in flight cannot cover the next (2·D > P)."""
    context = policy.observe(synthetic_observation(policy))
    committed = np.zeros((1 if getattr(policy, "rtc", None) is not None else 0, policy.action_dim), np.float32)
    latencies, rows = [], 0
    for _ in range(chunks):
        t0 = time.perf_counter()
        rows = len(policy.plan(context, committed, 0))
        latencies.append(time.perf_counter() - t0)
    policy.reset()
    latency = float(np.percentile(latencies[1:], 95))
    delay = ticks_for(latency, 1.0 / policy_hz)
    if 2 * delay > rows:
        fastest = (rows // 2 - 1) / latency if rows // 2 > 1 else 0.0
        raise OptionError(f"a chunk takes {latency * 1e3:.0f} ms (p95 of {chunks - 1} on synthetic observations): at "
                          f"{policy_hz:g} policy ticks a second it is merged D = {delay} ticks after its observation, "
                          f"and one chunk of {rows} rows in flight covers the next only while 2*D <= {rows}; "
                          + (f"lower --hz to {fastest:.1f} or less, or " if fastest > 0 else "")
                          + "use a faster backend")
    return delay


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


def _loop(robot: Robot, executor: Executor, options: DriveOptions, telemetry: Telemetry,
          tick: Callable[[TickRecord], None]) -> None:
    """One continuous run, or the recorded episodes; with the live view when asked."""
    with ExitStack() as stack:
        display = None
        if options.display:
            from edge.robot.record.display import RerunDisplay

            display = stack.enter_context(RerunDisplay(robot.position_names, list(robot.cameras),
                                                       options.display_ip, options.display_port))
        if options.record is None:
            run_loop(robot, executor, LoopConfig(options.hz, options.duration_s), telemetry, on_tick=tick,
                     on_frame=display)
        else:
            from edge.robot.record.episodes import record_episodes

            cameras = {name: tuple(cam.shape) for name, cam in robot.cameras.items()}
            record_episodes(robot, executor, options.hz, telemetry, tick, options.record, cameras,
                            robot.position_names, display)


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
        delay = robot.reaction_delay_s or 0.0
        limp = robot.limp_joints
        state = ("torque left ON, holding the last safe goal (the Bus Watchdog stops any motion once this process "
                 "is gone); `edge reboot` clears latched hardware errors" if reaction == "hold" else "torque off")
        if limp:
            state += f"; no torque on {', '.join(limp)}"
        return (f"stopped by a safety reaction ({reaction}, {delay * 1e3:.0f} ms after the first fault): "
                f"{robot.tripped}; no rest-pose motion; {state}; port released")
    if isinstance(ended, PolicyOutputError):
        return f"error: {ended}; torque off, port released"
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


def drive(robot: Robot, policy: PolicyRunner | RemotePlanner, options: DriveOptions,
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
    hz = policy_rate(policy, options.hz)
    if options.asynchronous:
        delay = measure_delay(policy, hz)
        executor = AsyncExecutor(policy, merge=options.merge, period_s=1.0 / hz, delay_ticks=delay)
        mode = f"asynchronous ({options.merge}, chunks merged about {delay} policy ticks after their observation)"
    else:
        executor, mode = SyncExecutor(policy), "synchronous"
    remote = isinstance(policy, RemotePlanner)
    counter = HoldCounter(executor) if remote else None  # inside the interpolation, which would hide an empty queue
    executor = counter or executor
    if hz < options.hz:
        executor = PolicyRate(executor, options.hz, hz)
        mode += f"; the policy at its {hz:g} Hz, goals interpolated in between"
    watch = None
    if remote:  # outermost: a lost server is a safety reaction at once, no goal after it
        executor = watch = ServerWatch(executor, policy, robot, counter)
    telemetry = Telemetry(options.telemetry_path, cameras=list(robot.cameras), meta=run_meta(policy, robot, options))
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
        if watch is not None:
            _say(watch.summary())
        breakdown = robot.safety_breakdown()
        if breakdown:
            _say("  safety interventions, by kind:\n" + "\n".join(f"  {line}" for line in breakdown))
        if telemetry.write_error is not None:
            lost.append(f"telemetry {options.telemetry_path} is incomplete: {telemetry.write_error}")
        if options.summary_path is not None:
            try:
                write_atomic(Path(options.summary_path), json.dumps(summary, indent=2))
            except OSError as exc:
                lost.append(f"summary {options.summary_path} not written: {exc.strerror or exc}")
        for line in lost:
            _say(f"error: {line}", "stderr")
        # a non-finite policy output is an error line (stderr) like every refusal; a safety reaction or a clean end
        # is the report's closing line (stdout)
        policy_failed = robot.tripped is None and isinstance(ended, PolicyOutputError)
        _say(how_it_ended(robot, ended), "stderr" if policy_failed else "stdout")
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
