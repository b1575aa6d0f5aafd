"""`edge calibrate --robot robot.yaml|koch|omx [--check]`: calibrate an arm's joints, or compare file and servos."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from edge.errors import CLIError

if TYPE_CHECKING:
    from calibration import BusConfig, RobotConfig


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `calibrate`."""
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate the arm's joints (LeRobot-compatible) or check the servos against the file",
        description="Torque off, centre the arm (Enter), sweep every joint (Enter); homing offsets and limits "
                    "are written to the servos and to the robot file's calibration file (bus after bus).",
    )
    add_robot_arguments(parser)
    parser.add_argument("--check", action="store_true",
                        help="compare the calibration file with the servos; exit 1 if they differ")
    return parser


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
    from calibration import load_robot_config

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


def run(args: argparse.Namespace) -> int:
    """Connect to each bus of the robot described by --robot, then calibrate or check."""
    from calibration.procedure import calibration_differences, read_servo_calibration, run_calibration
    from firmware_bridge.bus import DynamixelBus

    robot = robot_from(args)
    require_id(robot)
    expected = {bus.name: bus.load_calibration() for bus in robot.buses} if args.check else None
    differences = 0
    for config in robot.buses:
        bus = DynamixelBus(config.port, config.bus_motors(), baudrate=config.baudrate)
        try:
            bus.connect()
            if expected is not None:
                lines = calibration_differences(expected[config.name], read_servo_calibration(bus, config))
                for line in lines:
                    print(f"{config.name}: {line}" if config.name else line)
                print(f"{len(lines)} difference(s) between {config.calibration} and the servos"
                      if lines else f"servos match {config.calibration}")
                differences += len(lines)
            else:
                if config.name:
                    print(f"bus {config.name} ({config.port})")
                run_calibration(bus, config, sys.stdin, sys.stdout)
        except OSError as exc:
            raise CLIError(f"cannot write {config.calibration}: {exc.strerror or exc}; servos restored") from None
        finally:
            bus.disconnect()
    return 1 if differences else 0
