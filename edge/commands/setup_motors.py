"""`edge setup-motors --robot koch|omx|FILE [--port P]`: give each new servo the ID and baud rate the robot file says.

LeRobot's `lerobot-setup-motors` flow (robots/*/ `setup_motors()`): motors in reverse order, gripper first; for each
the user connects the controller board to that motor only and presses Enter. firmware_bridge/motor_setup.py does
the work and the checks LeRobot leaves out (read-back, the model found, two motors on the line).
"""

from __future__ import annotations

import argparse
import sys

from edge.commands.shared import robot_from
from edge.errors import CLIError
from edge.option_types import non_negative_float


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `setup-motors`."""
    parser = subparsers.add_parser(
        "setup-motors", help="set each new servo's ID and baud rate, one motor at a time (lerobot-setup-motors)",
        description="For each motor of the robot file, gripper first: connect the controller board to that motor "
                    "only, press Enter; the motor is found at whatever ID and baud rate it has (new servos: ID 1, "
                    "57600 bps), checked to be the file's model, and given the file's ID and baud rate, read back.")
    parser.add_argument("--robot", required=True, help="robot file (YAML) or a preset: koch, omx")
    parser.add_argument("--port", default=None, help="serial port, overriding the robot file's (single-bus robots)")
    parser.add_argument("--bus-slack-ms", type=non_negative_float, default=3.0,
                        help="extra time allowed for each servo reply (default 3; raise it for slow adapters/emulators)")
    parser.add_argument("--motor", action="append", default=None, metavar="NAME",
                        help="set up only this motor (repeatable; default every motor, in reverse order)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Prompt for each motor in turn and set it up; Ctrl-C or closed input stops between motors."""
    from firmware_bridge.motor_setup import setup_servo

    args.robot_id = args.calibration = None  # the calibration is not used here
    robot = robot_from(args)
    motors = [(bus, m) for bus in robot.buses for m in (*bus.motors, *bus.shadows)]
    names = [bus.joint_name(m.name) for bus, m in motors]
    if args.motor:
        unknown = [n for n in args.motor if n not in names]
        if unknown:
            raise CLIError(f"--motor {', '.join(unknown)}: not in the robot file (motors: {', '.join(names)})")
    for (bus, motor), name in reversed(list(zip(motors, names))):
        if args.motor and name not in args.motor:
            continue
        print(f"Connect the controller board to the '{name}' motor only ({motor.model}, id {motor.id}) on "
              f"{bus.port} and press Enter.", flush=True)
        if not sys.stdin.readline():
            raise CLIError(f"input closed before '{name}' was connected; the motors done so far keep their setup")
        found = setup_servo(bus.port, motor.model, motor.id, bus.baudrate,
                            progress=lambda line: print(line, file=sys.stderr, flush=True), slack_ms=args.bus_slack_ms)
        print(f"'{name}' motor id set to {motor.id} at {bus.baudrate} bps (found {found.model_name} at id "
              f"{found.id}, {found.baudrate} bps; read back)", flush=True)
    print("all motors set up: connect them in a chain and run `edge calibrate`", flush=True)
    return 0
