"""`edge run --robot robot.yaml|koch|omx --policy <package> [--hz 50] [--async] [--duration S] [--summary F]`.

Exit status: 0 a clean end, 2 refused before anything moved (robot file, package, cameras, calibration
mismatch), 3 ended by a safety reaction or a non-finite policy output, 130 Ctrl-C (edge/exit_status.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import edge
from edge.commands.calibrate import (
    add_robot_arguments,
    calibrate_bus,
    calibrate_command,
    calibrate_if_missing,
    on_a_terminal,
    robot_from,
)
from edge.errors import CLIError
from edge.robot.executors import MERGE_RULES
from edge.runtime.backends import BACKENDS

if TYPE_CHECKING:
    from edge.robot.drive import DriveOptions


def add_loop_arguments(p: argparse.ArgumentParser, hz_default: float | None,
                       duration_default: float | None = None) -> None:
    """Options shared by `edge run` and `edge demo`; the help states the defaults each command really has."""
    p.add_argument("--hz", type=float, default=hz_default,
                   help="control rate (default: the robot file's control_hz)" if hz_default is None
                   else f"control rate (default {hz_default:g} Hz)")
    p.add_argument("--async", dest="asynchronous", action="store_true",
                   help="compute the next chunk while the current one executes (the loop never waits)")
    p.add_argument("--merge", choices=MERGE_RULES, default="latest", help="how overlapping chunks merge (--async)")
    p.add_argument("--duration", type=float, default=duration_default,
                   help="seconds to run (default: until Ctrl-C)" if duration_default is None
                   else f"seconds to run (default {duration_default:g} s, one episode)")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--telemetry", type=Path, default=None, help="per-tick JSONL telemetry file")
    p.add_argument("--summary", type=Path, default=None, help="write the end-of-run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no live status line")


def options_from(args: argparse.Namespace, hz: float) -> DriveOptions:
    from edge.robot.drive import DriveOptions

    return DriveOptions(hz=hz, duration_s=args.duration, asynchronous=args.asynchronous, merge=args.merge,
                        telemetry_path=args.telemetry, summary_path=args.summary, status=not args.quiet)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="drive a robot with a policy package")
    add_robot_arguments(p)
    p.add_argument("--policy", required=True, type=Path, help="policy package directory")
    p.add_argument("--write-calibration", action="store_true",
                   help="write the calibration file's values to the servos instead of refusing a mismatch")
    p.add_argument("--bus-slack-ms", type=float, default=3.0,
                   help="extra time allowed for each servo reply (default 3; raise it for slow adapters/emulators)")
    p.add_argument("--feature", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a constant observation feature, e.g. observation.environment_state=0.1,0,0.2")
    add_loop_arguments(p, hz_default=None)
    return p


def parse_features(items: list[str]) -> dict[str, np.ndarray]:
    features = {}
    for item in items:
        name, sep, values = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            features[name] = np.array([float(v) for v in values.split(",")], np.float32)
        except ValueError:
            raise CLIError(f"--feature {item!r}: expected NAME=V1,V2,... with numbers") from None
    return features


def run(args: argparse.Namespace) -> int:
    from calibration.procedure import CalibrationMismatch
    from edge.robot.drive import drive
    from edge.robot.robot import Robot

    config = robot_from(args)
    features = parse_features(args.feature)
    with edge.load_policy(args.policy, backend=args.backend) as policy:
        calibrate_if_missing(config, args)
        robot = Robot(config, static_features=features, bus_timeout_slack_ms=args.bus_slack_ms,
                      write_calibration=args.write_calibration)
        try:
            drive(robot, policy, options_from(args, args.hz or config.control_hz))
        except CalibrationMismatch as exc:  # refused before torque-on: nothing moved
            print(exc.table, file=sys.stderr)
            if not on_a_terminal():
                print(f"to recalibrate: {calibrate_command(args)}", file=sys.stderr)
                raise
            # LeRobot's Koch calibrate(): ENTER uses the file (writes it to the servos), c recalibrates
            answer = input("Press ENTER to write the calibration file's values to the servos, or type 'c' and "
                           "press ENTER to recalibrate: ")
            if answer.strip().lower() == "c":
                for bus in config.buses:
                    calibrate_bus(bus, args.bus_slack_ms, factory=False)
            robot = Robot(config, static_features=features, bus_timeout_slack_ms=args.bus_slack_ms,
                          write_calibration=answer.strip().lower() != "c")
            drive(robot, policy, options_from(args, args.hz or config.control_hz))
    return 0
