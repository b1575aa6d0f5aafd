"""`edge emulate`: serve an emulated chain of Dynamixel X-series servos on a pty until Ctrl-C.

`--hand` moves every torque-off joint as a person calibrating the arm would; `--fault ID:KIND@START[+DURATION]`
(repeatable) rehearses a lost, slow, failing or browned-out (`reset`) servo without writing Python. `--robot FILE|koch|omx` emulates
exactly the chain(s) a robot file names, one pty per bus.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import time

from edge.errors import CLIError
from edge.option_types import count, int_choice, positive_float
from firmware_bridge import tables


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `emulate` and its options."""
    parser = subparsers.add_parser("emulate", help="emulate a Dynamixel servo chain on a pty",
                                   description="Serve N emulated X-series servos (Protocol 2.0) on a pty; "
                                               "prints the port to open, serves until Ctrl-C.")
    parser.add_argument("--servos", type=count, default=None, help="number of servos (default 6, or as many as --ids)")
    parser.add_argument("--model", default="xl430-w250",
                        help="servo model for every id, or one per id comma-separated (a mixed chain such as "
                             "Koch's xl430-w250,xl430-w250,xl330-m288,xl330-m288,xl330-m288,xl330-m288); "
                             f"known: {', '.join(sorted(tables.MODELS))}")
    parser.add_argument("--baudrate", type=int_choice(tables.BAUD_RATES.values()), default=1_000_000,
                        help="modelled baud rate (default 1000000)")
    parser.add_argument("--ids", default=None, help="comma-separated ids (default 1..N)")
    parser.add_argument("--no-timing", action="store_true", help="reply at once instead of modelling wire time")
    parser.add_argument("--hand", action="store_true",
                        help="a hand moves every torque-off joint slowly back and forth (+-79 degrees) around where "
                             "it was taken, so `edge calibrate` can be run against the emulator")
    parser.add_argument("--hand-period", type=positive_float, default=None, metavar="S",
                        help="seconds for one back-and-forth of the hand (default: the emulated hand's own, "
                             "firmware_bridge/emulator/physics.py)")
    parser.add_argument("--fault", action="append", default=[], metavar="ID:KIND@START[+DURATION]",
                        help="inject a fault, repeatable: KIND drop_reply, corrupt_crc, delay:MS, vanish, overload, "
                             "overheat, reset (power lost for DURATION, default 30 ms, then factory RAM: torque and "
                             "Bus Watchdog off); START in seconds from the first connection (the first bytes a host "
                             "sends), not from when the emulator starts; no DURATION = until the end "
                             "(e.g. --fault 3:vanish@2.0+1.5 --fault 6:overload@5 --fault 2:reset@4)")
    parser.add_argument("--factory-fresh", action="store_true",
                        help=f"servos as they leave the factory: every one at ID {tables.FACTORY_ID} and "
                             f"{tables.FACTORY_BAUDRATE} bps (--servos of them, default 1; two or more collide on "
                             "the ID, as on a real bus), for `edge setup-motors`")
    parser.add_argument("--robot", default=None,
                        help="emulate exactly the chain(s) of this robot file or preset (koch, omx): its ids, models "
                             "and baud rate, one pty per bus, printed as '<bus> <pty>' (just the pty for one bus)")
    return parser


def robot_chains(robot: str) -> list[tuple[str, int, dict[int, str]]]:
    """(bus name, baud rate, {id: model}) for every bus of a robot file, shadows included."""
    from edge.robot.robot_file import load_robot_config

    config = load_robot_config(robot)
    return [(bus.name, bus.baudrate, {m.id: m.model for m in (*bus.motors, *bus.shadows)}) for bus in config.buses]


def run(args: argparse.Namespace) -> int:
    """Start the emulator(s), print the port(s), serve until SIGINT (Ctrl-C) or SIGTERM."""
    if args.factory_fresh:
        if args.robot is not None or args.ids is not None:
            raise CLIError("--factory-fresh servos all have ID 1; drop --robot/--ids (use --servos and --model)")
        models = args.model.split(",")
        models = models * (args.servos or 1) if len(models) == 1 else models
        return serve([("", tables.FACTORY_BAUDRATE, dict(enumerate(models, start=1)))], args)
    if args.robot is not None:
        if args.servos is not None or args.ids is not None:
            raise CLIError("--robot names the ids and models; drop --servos/--ids")
        chains = robot_chains(args.robot)
        if len(chains) > 1 and args.fault:
            raise CLIError("--fault ids are ambiguous on a robot file with several buses")
        return serve(chains, args)
    try:
        ids = [int(i) for i in args.ids.split(",")] if args.ids else list(range(1, (args.servos or 6) + 1))
    except ValueError:
        raise CLIError(f"--ids must be comma-separated integers, got {args.ids!r}") from None
    if args.ids and args.servos is not None and len(ids) != args.servos:
        raise CLIError(f"--servos {args.servos} but {len(ids)} ids given")
    if len(set(ids)) != len(ids) or not all(0 <= i <= tables.MAX_ID for i in ids) or not ids:
        raise CLIError(f"ids must be distinct and in 0..{tables.MAX_ID}, got {ids}")
    models = args.model.split(",")
    if len(models) not in (1, len(ids)):
        raise CLIError(f"--model names {len(models)} models for {len(ids)} ids; give one, or one per id")
    chain = dict(zip(ids, models * len(ids) if len(models) == 1 else models))
    return serve([("", args.baudrate, chain)], args)


def serve(chains: list[tuple[str, int, dict[int, str]]], args: argparse.Namespace) -> int:
    """One emulator (pty) per chain; print `<name> <pty>` per chain (just the pty for one unnamed chain)."""
    from firmware_bridge.emulator import Hand, ServoEmulator, TimedFault

    hand = (Hand() if args.hand_period is None else Hand(period_s=args.hand_period)) if args.hand else None
    faults = [TimedFault.parse(text) for text in args.fault]
    options = dict(timing=not args.no_timing, hand=hand, faults=faults)
    if args.factory_fresh:  # one chain, keyed by slot: every servo is at ID 1
        emulators = [ServoEmulator.factory_fresh(list(chains[0][2].values()), **options)]
    else:
        emulators = [ServoEmulator(chain, baudrate, **options) for _, baudrate, chain in chains]
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background with SIGINT ignored
        signal.signal(sig, signal.default_int_handler)
    try:  # Ctrl-C is how it stops, also while the ports are still being announced
        with contextlib.ExitStack() as stack:
            for (name, _, _), emulator in zip(chains, emulators):
                stack.enter_context(emulator)
                print(f"{name} {emulator.port}" if name else emulator.port, flush=True)
            extras = (["hand on torque-off joints"] if args.hand else []) + [f"fault {f}" for f in args.fault]
            for name, baudrate, chain in chains:
                if args.factory_fresh:
                    print(f"{len(chain)} factory-fresh servo(s) ({', '.join(chain.values())}), all at ID "
                          f"{tables.FACTORY_ID}, {baudrate} bps{''.join(f'; {e}' for e in extras)}", flush=True)
                    continue
                print(f"{name + ': ' if name else ''}{', '.join(f'{i}: {m}' for i, m in chain.items())} at "
                      f"{baudrate} bps{''.join(f'; {e}' for e in extras)}", flush=True)
            print("Ctrl-C to stop", flush=True)
            while True:
                time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
