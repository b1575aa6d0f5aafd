"""`edge run --robot robot.yaml|koch|omx --policy <package> [--hz 50] [--async] [--duration S] [--summary F]`.

`--record DIR [--episodes N] [--episode-time-s T] [--reset-time-s R] --task TEXT` runs episodes as lerobot-record
does and records them as a LeRobot dataset (edge/robot/record/episodes.py); `--display [--display-ip IP
--display-port P]` streams to a rerun viewer (edge/robot/record/display.py).

`--server grpc://host:8001 [--server-timeout-ms T]` plans every chunk on a policy server (`edge serve`) instead
of running the package's graphs here (edge/robot/remote.py); the local package stays the contract.

Exit status: 0 a clean end, 2 refused before anything moved (robot file, package, cameras, calibration
mismatch, an output file that could not be written, a port another program holds), 3 ended by a safety reaction
or a non-finite policy output, 4 ended cleanly but a result file could not be written, 128 + N for signal N
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: each an ordered shutdown) (edge/exit_status.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import edge
from edge.commands.shared import (
    add_loop_arguments,
    add_robot_arguments,
    apply_merge,
    calibrate_bus,
    calibrate_command,
    calibrate_if_missing,
    on_a_terminal,
    options_from,
    robot_from,
)
from edge.errors import CLIError
from edge.option_types import count, int_in, non_negative_float, positive_float
from edge.runtime.wire import parse_server_url

if TYPE_CHECKING:
    from edge.robot.record.episodes import RecordOptions


def _task(text: str) -> str:
    from edge.robot.record.episodes import check_task

    try:
        return check_task(text)
    except CLIError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


def add_record_arguments(p: argparse.ArgumentParser) -> None:
    """`--record` and `--display` (LeRobot's lerobot-record options, defaults and keys)."""
    g = p.add_argument_group("recording (LeRobot dataset v3.0; pip install '.[record]')")
    g.add_argument("--record", type=Path, default=None, metavar="DIR",
                   help="record episodes into a new LeRobot dataset DIR, named eval_... (lerobot-record's rule)")
    g.add_argument("--episodes", type=count, default=None,
                   help="episodes to record (default 50, LeRobot's)")
    g.add_argument("--episode-time-s", type=positive_float, default=None,
                   help="seconds per episode (default 60); → ends one early")
    g.add_argument("--reset-time-s", type=non_negative_float, default=None,
                   help="seconds of reset between episodes, the arm holding (default 60); → ends it early")
    g.add_argument("--task", type=_task, default=None, help="the task the episodes show (LeRobot's single_task)")
    g.add_argument("--vcodec", choices=("libsvtav1", "h264", "hevc"), default=None,
                   help="video codec (default libsvtav1, LeRobot's; lossy, see docs/recording.md)")
    g = p.add_argument_group("live view (rerun; pip install '.[display]')")
    g.add_argument("--display", action="store_true", help="stream camera frames and joints to a rerun viewer")
    g.add_argument("--display-ip", default=None, help="the viewer's address (a headless robot needs one)")
    g.add_argument("--display-port", type=int_in(1, 65535), default=None,
                   help="the viewer's port (default 9876, rerun's)")


def check_record_arguments(args: argparse.Namespace) -> None:
    """Combinations of the recording and live-view options, refused before anything is opened (exit 2)."""
    if args.record is None:
        given = [f"--{name.replace('_', '-')}" for name in ("episodes", "episode_time_s", "reset_time_s", "task",
                                                            "vcodec") if getattr(args, name) is not None]
        if given:
            raise CLIError(f"{', '.join(given)} only apply with --record DIR")
    else:
        if args.task is None:
            raise CLIError("--record needs --task TEXT (the task the episodes show, LeRobot's --dataset.single_task)")
        if args.duration is not None:
            raise CLIError("--duration does not apply with --record (episodes last --episode-time-s)")
    if not args.display and (args.display_ip is not None or args.display_port is not None):
        raise CLIError("--display-ip/--display-port only apply with --display")


def record_options(args: argparse.Namespace) -> RecordOptions | None:
    """The recording --record and its options ask for, None without --record."""
    if args.record is None:
        return None
    from edge.robot.record.episodes import RecordOptions

    robot_type = f"{args.robot}_follower" if args.robot in ("koch", "omx") else None  # LeRobot's robot.name
    given = {"episodes": args.episodes, "episode_time_s": args.episode_time_s, "reset_time_s": args.reset_time_s,
             "vcodec": args.vcodec}
    return RecordOptions(args.record, args.task, robot_type=robot_type,
                         **{k: v for k, v in given.items() if v is not None})


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="drive a robot with a policy package")
    add_robot_arguments(p)
    p.add_argument("--policy", required=True, type=Path, help="policy package directory")
    p.add_argument("--write-calibration", action="store_true",
                   help="write the calibration file's values to the servos instead of refusing a mismatch")
    p.add_argument("--bus-slack-ms", type=non_negative_float, default=3.0,
                   help="extra time allowed for each servo reply (default 3; raise it for slow adapters/emulators)")
    p.add_argument("--feature", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a constant observation feature, e.g. observation.environment_state=0.1,0,0.2")
    p.add_argument("--server", type=_server_url, default=None, metavar="grpc://HOST:PORT",
                   help="plan chunks on a policy server (`edge serve`); runs asynchronously, no graph runs here")
    p.add_argument("--server-timeout-ms", type=_timeout_ms, default=1000.0, metavar="T",
                   help="with --server: a chunk request unanswered for T ms is a safety reaction (default 1000)")
    p.add_argument("--server-ca", type=Path, default=None, metavar="PEM",
                   help="with a grpcs:// server: the root certificate that signed the server's")
    add_loop_arguments(p, hz_default=None)
    add_record_arguments(p)
    return p


def _server_url(text: str) -> str:
    try:
        parse_server_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _timeout_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 3.6e6:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"--server-timeout-ms must be a number of milliseconds > 0, got {text!r}")
    return value


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

    check_record_arguments(args)
    config = robot_from(args)
    if args.server is not None:
        return run_remote(args, config)
    features = parse_features(args.feature)
    with edge.load_policy(args.policy, backend=args.backend) as policy:
        apply_merge(policy, args.merge)
        calibrate_if_missing(config, args)
        hz = args.hz or config.control_hz
        robot = Robot(config, static_features=features, bus_timeout_slack_ms=args.bus_slack_ms,
                      write_calibration=args.write_calibration, loop_hz=hz)
        try:
            drive(robot, policy, options_from(args, hz, record_options(args)))
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
                          write_calibration=answer.strip().lower() != "c", loop_hz=hz)
            drive(robot, policy, options_from(args, hz, record_options(args)))
    return 0


def run_remote(args: argparse.Namespace, config) -> int:  # noqa: ANN001
    """`--server`: connect (refused before torque-on if unreachable or another package), then drive asynchronously."""
    from calibration.procedure import CalibrationMismatch
    from edge.robot.drive import drive
    from edge.robot.remote import RemotePlanner
    from edge.robot.robot import Robot

    if args.backend != "auto":
        raise CLIError("--backend has no effect with --server: the server runs the graphs")
    if args.server_ca is not None and not args.server.startswith("grpcs://"):
        raise CLIError("--server-ca is for a grpcs:// server")
    if args.merge == "rtc":
        raise CLIError("--merge rtc is not available with --server yet: the guided sampling would run on the server, "
                       "which serves unguided chunks; use latest, average, weighted or ensemble")
    from edge.robot.chunks import check_merge_rule

    planner = RemotePlanner(args.policy, args.server, args.server_timeout_ms, root_cert=args.server_ca)
    try:
        check_merge_rule(planner.package.manifest.policy_type, args.merge)
        planner.connect()
        calibrate_if_missing(config, args)
        hz = args.hz or config.control_hz
        robot = Robot(config, static_features=parse_features(args.feature), bus_timeout_slack_ms=args.bus_slack_ms,
                      write_calibration=args.write_calibration, loop_hz=hz)
        args.asynchronous = True  # the loop never waits on the network
        drive(robot, planner, options_from(args, hz, record_options(args)))
    except CalibrationMismatch as exc:
        print(exc.table, file=sys.stderr)
        raise
    finally:
        planner.close()
    return 0
