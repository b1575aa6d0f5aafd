"""What several commands take, so that no command module imports another (each is only a parser and a `run`).

The robot options (`--robot`, `--port`, `--id`, `--calibration`) and the robot they name, calibrated first where a
bus has no calibration file (LeRobot's connect(calibrate=True)): `edge run`, `calibrate`, `reboot`, `setup-motors`.
The control-loop options and what they turn into: `edge run` and `edge demo`. A helper module, not a command: it
has no `add_parser`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import CLIError
from edge.option_types import only_with, positive_float
from edge.robot.chunks import ALL_MERGE_RULES, check_merge_rule
from edge.runtime.backends import BACKENDS

if TYPE_CHECKING:
    from edge.robot.drive import DriveOptions
    from edge.robot.record.episodes import RecordOptions
    from edge.robot.robot_file import BusConfig, RobotConfig


def add_robot_arguments(parser: argparse.ArgumentParser) -> None:
    """--robot (a file or a preset) and the preset overrides, shared by the commands that open a robot."""
    parser.add_argument("--robot", required=True, help="robot file (YAML, see docs/calibration.md) or a preset: "
                                                       "koch, omx")
    parser.add_argument("--port", default=None, help="serial port, overriding the robot file's (single-bus robots)")
    parser.add_argument("--id", dest="robot_id", default=None, metavar="NAME",
                        help="the arm's name (LeRobot's --robot.id): its calibration is "
                             "$HF_LEROBOT_CALIBRATION/robots/<type>/<NAME>.json, where LeRobot keeps it")
    parser.add_argument("--calibration", default=None,
                        help="calibration file, overriding the robot file's and --id's (single-bus robots)")


def robot_from(args: argparse.Namespace) -> RobotConfig:
    """The robot the arguments name, with --id, --port and --calibration applied; RobotConfigError if unusable."""
    from edge.robot.robot_file import load_robot_config

    return load_robot_config(args.robot, robot_id=args.robot_id).with_overrides(port=args.port,
                                                                              calibration=args.calibration)


def calibrate_command(args: argparse.Namespace) -> str:
    """The `edge calibrate` line for the robot these arguments name, for messages that send the user there."""
    words = ["edge calibrate", "--robot", args.robot]
    for flag, value in (("--id", args.robot_id), ("--port", args.port), ("--calibration", args.calibration)):
        if value is not None:
            words += [flag, str(value)]
    return " ".join(words)


def require_id(robot: RobotConfig) -> None:
    """A typed robot needs an id to find its calibration file: CLIError naming LeRobot's folder and the known ids."""
    if any(bus.calibration is None for bus in robot.buses):
        raise CLIError(f"{robot.robot_type} keeps its calibration in {calibration_folder(robot)}/<id>.json: name "
                       f"the arm with --id NAME{known_ids(robot)}")


def calibrate_if_missing(robot: RobotConfig, args: argparse.Namespace) -> None:
    """LeRobot's connect(calibrate=True) for buses without a calibration file: on a terminal, calibrate them now
    (a robot whose joints all take the full turn, LeRobot's OMX, gets its factory calibration without asking);
    otherwise refuse, naming the command to run. Servos are only written here on a terminal, torque off."""
    require_id(robot)
    missing = [bus for bus in robot.buses if bus.calibration is not None and not bus.calibration.is_file()]
    if not missing:
        return
    files = ", ".join(str(bus.calibration) for bus in missing)
    if not on_a_terminal():
        raise CLIError(f"no calibration file {files}: calibrate the arm first with `{calibrate_command(args)}` "
                       "(or pass --calibration FILE)")
    name = f"{robot.robot_type or 'robot'} {robot.robot_id!r}" if robot.robot_id else "this robot"
    for config in missing:
        intro = (f"No calibration file for {name} ({config.calibration}); every joint takes the full turn: writing "
                 "the factory calibration (homing offset 0, range 0..4095) to the servos, as LeRobot does"
                 if config.factory_calibrated else
                 f"No calibration file for {name} ({config.calibration}): calibrating now, as LeRobot does at "
                 "connect (Ctrl-C to stop)")
        print(intro, flush=True)
        calibrate_bus(config, getattr(args, "bus_slack_ms", 3.0), factory=True)


def on_a_terminal() -> bool:
    """Someone is there to answer: stdin and stdout are a terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def calibrate_bus(config: BusConfig, slack_ms: float, factory: bool) -> None:
    """Calibrate one bus now: `factory` and every joint full-turn, the factory calibration written to servos and
    file (LeRobot's OMX); otherwise the interactive procedure."""
    from calibration import save_calibration
    from calibration.procedure import apply_file_calibration, run_calibration
    from firmware_bridge.bus import DynamixelBus

    bus = DynamixelBus(config.port, config.bus_motors(), baudrate=config.baudrate, timeout_slack_ms=slack_ms)
    try:
        bus.connect()
        if factory and config.factory_calibrated:
            calibration = config.factory_calibration()
            apply_file_calibration(bus, config, calibration)
            save_calibration(calibration, config.calibration)
        else:
            run_calibration(bus, config, sys.stdin, sys.stdout)
    finally:
        bus.disconnect()


def calibration_folder(robot: RobotConfig) -> str:
    """LeRobot's calibration folder of a typed robot, as the user would type it."""
    from calibration.lerobot_paths import robot_calibration_dir

    return str(robot_calibration_dir(robot.robot_type or ""))


def known_ids(robot: RobotConfig) -> str:
    """`` (calibrated ids: a, b)`` for a typed robot, else ""."""
    from calibration.lerobot_paths import calibrated_ids

    ids = calibrated_ids(robot.robot_type) if robot.robot_type else []
    return f" (calibrated ids: {', '.join(ids)})" if ids else ""


def add_loop_arguments(p: argparse.ArgumentParser, hz_default: float | None,
                       duration_default: float | None = None) -> None:
    """Options shared by `edge run` and `edge demo`; the help states the defaults each command really has."""
    p.add_argument("--hz", type=positive_float, default=hz_default,
                   help=("servo loop rate (default: the robot file's control_hz)" if hz_default is None
                         else f"servo loop rate (default {hz_default:g} Hz)")
                   + "; the policy itself advances at its package's fps, goals interpolated in between "
                     "(docs/robot_loop.md)")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="compute the next chunk while the current one executes (the loop never waits)")
    p.add_argument("--merge", choices=ALL_MERGE_RULES, default="latest",
                   help="how overlapping chunks merge (--async); rtc (diffusion): sampling guided by the committed "
                        "actions, then latest; forecast (act): planned from the state the committed goals reach")
    p.add_argument("--duration", type=positive_float, default=duration_default,
                   help="seconds to run (default: until Ctrl-C)" if duration_default is None
                   else f"seconds to run (default {duration_default:g} s, one episode)")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--telemetry", type=Path, default=None, help="per-tick JSONL telemetry file")
    p.add_argument("--summary", type=Path, default=None, help="write the end-of-run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    only_with(p, "--merge", "--async")


def apply_merge(policy, rule: str) -> None:  # noqa: ANN001 (a loaded PolicyRunner)
    """Refuse a merge rule the loaded policy's family does not take (naming those it does); rtc turns on guided
    sampling."""
    from edge.runtime.guidance import RTCOptions

    check_merge_rule(policy.policy_type, rule)
    if rule == "rtc":
        policy.use_rtc(RTCOptions())


def options_from(args: argparse.Namespace, hz: float, record: RecordOptions | None = None) -> DriveOptions:
    """The drive options the loop arguments (and `edge run`'s --record/--display, where given) ask for."""
    from edge.robot.drive import DriveOptions

    return DriveOptions(hz=hz, duration_s=args.duration, asynchronous=args.asynchronous, merge=args.merge,
                        telemetry_path=args.telemetry, summary_path=args.summary, status=not args.quiet,
                        record=record, display=getattr(args, "display", False),
                        display_ip=getattr(args, "display_ip", None),
                        display_port=getattr(args, "display_port", None) or 9876)
