"""`edge demo`: needs nothing — an emulated 6-servo arm, the bundled policy, 10 s at 50 Hz, then the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge.cli import CLIError
from edge.commands.run import add_loop_arguments, options_from
from edge.drive import drive
from edge.emulated_arm import BUS_SLACK_MS, emulated_arm
from edge.errors import EdgeError

BUNDLED = {"act": Path(__file__).resolve().parents[1] / "data" / "demo_act"}
DEMO_TARGET = np.array([0.15, -0.10, 0.20], np.float32)  # the bundled ACT's environment_state: a fixed target


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run a bundled policy on an emulated arm (no robot, no GPU needed)")
    p.add_argument("--policy", choices=sorted(BUNDLED), default="act", help="bundled policy (default act)")
    add_loop_arguments(p, hz_default=50.0)
    p.set_defaults(duration=10.0)
    return p


def run(args: argparse.Namespace) -> int:
    package = BUNDLED[args.policy]
    print(f"starting an emulated 6-servo arm ({args.hz:g} Hz, {args.duration:g} s)")
    try:
        with emulated_arm(hz=args.hz) as (robot, emulator):
            print(f"emulated servos on {emulator.port}")
            drive(robot, package, options_from(args, args.hz, bus_timeout_slack_ms=BUS_SLACK_MS, static_features={
                "observation.environment_state": DEMO_TARGET}))
    except EdgeError as exc:
        raise CLIError(str(exc)) from None
    return 0
