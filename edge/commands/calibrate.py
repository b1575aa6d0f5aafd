"""`edge calibrate --robot robot.yaml [--check]`: calibrate an arm's joints, or compare file and servos."""

from __future__ import annotations

import argparse
import sys

from calibration import load_robot_config
from calibration.procedure import calibration_differences, read_servo_calibration, run_calibration
from edge.cli import CLIError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `calibrate`."""
    parser = subparsers.add_parser(
        "calibrate",
        help="calibrate the arm's joints (LeRobot-compatible) or check the servos against the file",
        description="Torque off, centre the arm (Enter), sweep every joint (Enter); homing offsets and limits "
                    "are written to the servos and to the robot file's calibration file.",
    )
    parser.add_argument("--robot", required=True, help="robot file (YAML), see docs/calibration.md")
    parser.add_argument("--check", action="store_true",
                        help="compare the calibration file with the servos; exit 1 if they differ")
    return parser


def run(args: argparse.Namespace) -> int:
    """Connect to the arm described by --robot, then calibrate or check."""
    from firmware_bridge import DynamixelBus  # not at import time: `edge` must start without it

    robot = load_robot_config(args.robot)
    expected = robot.load_calibration() if args.check else None
    bus = DynamixelBus(robot.port, robot.bus_motors(), baudrate=robot.baudrate)
    try:
        bus.connect()
        if expected is not None:
            differences = calibration_differences(expected, read_servo_calibration(bus, robot))
            for line in differences:
                print(line)
            print(f"{len(differences)} difference(s) between {robot.calibration} and the servos"
                  if differences else f"servos match {robot.calibration}")
            return 1 if differences else 0
        run_calibration(bus, robot, sys.stdin, sys.stdout)
        return 0
    except OSError as exc:
        raise CLIError(f"cannot write {robot.calibration}: {exc.strerror or exc}; servos restored") from None
    finally:
        bus.disconnect()
