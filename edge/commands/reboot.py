"""`edge reboot --robot FILE [--joint NAME]`: clear latched hardware errors with the REBOOT instruction.

Reports every servo's Hardware_Error_Status before and after. Without --joint, only servos with a latched error
are rebooted; --joint reboots that servo (a joint or a shadow, named as in the robot's vector) in any case. A
rebooted servo comes back with torque off. Exit status 1 if an error is still latched afterwards.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from edge.commands.shared import add_robot_arguments, robot_from
from edge.errors import CLIError

if TYPE_CHECKING:
    from firmware_bridge.bus import DynamixelBus

REBOOT_WAIT_S = 2.0  # how long a rebooted servo may take to answer PING again


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `reboot`."""
    parser = subparsers.add_parser("reboot", help="clear latched hardware errors (REBOOT) and report them",
                                   description=__doc__.split("\n\n")[1])
    add_robot_arguments(parser)
    parser.add_argument("--joint", default=None, help="reboot only this servo (default: every servo with an error)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Connect to each bus, read the error bits, reboot, read them again."""
    from firmware_bridge import tables
    from firmware_bridge.bus import DynamixelBus

    robot = robot_from(args)
    names = {bc.joint_name(m.name): (bc, m.name) for bc in robot.buses for m in (*bc.motors, *bc.shadows)}
    if args.joint is not None and args.joint not in names:
        raise CLIError(f"--joint {args.joint!r} is not on this robot ({', '.join(names)})")
    latched = False
    rows = [f"{'servo':<24} {'before':<28} after"]
    for bc in robot.buses:
        wanted = [m for j, (b, m) in names.items() if b is bc and args.joint in (None, j)]
        if not wanted:
            continue
        bus = DynamixelBus(bc.port, bc.bus_motors(), bc.baudrate)
        try:
            bus.connect()
            before = {m: bus.read("Hardware_Error_Status", m) for m in wanted}
            for m in wanted:
                if before[m] or args.joint is not None:
                    bus.reboot(m)
                    _wait_for(bus, m)
            after = {m: bus.read("Hardware_Error_Status", m) for m in wanted}
        finally:
            bus.disconnect()
        rows += [f"{bc.joint_name(m):<24} {tables.describe_hw_error(before[m]):<28} "
                 f"{tables.describe_hw_error(after[m])}" for m in wanted]
        latched = latched or any(after.values())
    print("\n".join(rows))
    return 1 if latched else 0


def _wait_for(bus: DynamixelBus, motor: str) -> None:
    """Until the rebooted servo answers PING again (BusError after REBOOT_WAIT_S)."""
    from firmware_bridge.bus import BusError

    deadline = time.monotonic() + REBOOT_WAIT_S
    while True:
        try:
            bus.ping(motor)
            return
        except BusError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
