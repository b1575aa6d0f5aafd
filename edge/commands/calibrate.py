"""`edge calibrate --robot robot.yaml|koch|omx [--check]`: calibrate an arm's joints, or compare file and servos."""

from __future__ import annotations

import argparse
import sys

from edge.commands.shared import add_robot_arguments, require_id, robot_from
from edge.errors import CLIError


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
