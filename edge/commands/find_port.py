"""`edge find-port`: which serial port is the servo adapter? LeRobot's `lerobot-find-port`, plus the stable name.

LeRobot lists /dev/tty* before and after the user unplugs the adapter and names the one that vanished. The
/dev/ttyUSB0-style name can change between boots and with other USB devices; udev's /dev/serial/by-id/ link does
not, but it vanishes with the adapter, so it is resolved before the unplug. The line for the robot file is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edge.errors import CLIError

SETTLE_S = 3.0  # udev removes the device node a moment after the unplug: keep looking this long


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `find-port`."""
    parser = subparsers.add_parser(
        "find-port", help="find the servo adapter's serial port by unplugging it (lerobot-find-port)",
        description="Lists the serial ports, asks you to unplug the adapter's USB cable, and names the port that "
                    "disappeared, with its stable /dev/serial/by-id/ name and the line for the robot file.")
    parser.add_argument("--dev", type=Path, default=Path("/dev"), help="the device folder (default /dev)")
    return parser


def serial_ports(dev: Path) -> dict[str, str | None]:
    """Every `tty*` under `dev` -> its /dev/serial/by-id/ link (None when it has none)."""
    by_id: dict[str, str] = {}
    links = dev / "serial" / "by-id"
    if links.is_dir():
        for link in sorted(links.iterdir()):
            by_id.setdefault(os.path.realpath(link), str(link))
    return {str(p): by_id.get(os.path.realpath(p)) for p in sorted(dev.glob("tty*"))}


def run(args: argparse.Namespace) -> int:
    """Before/after the unplug; exactly one port must have gone."""
    print("Finding all available ports for the servo adapter.", flush=True)
    before = serial_ports(args.dev)
    adapters = [f"{link} -> {port}" for port, link in before.items() if link]
    print("Ports before disconnecting: " + ", ".join(before) if before else f"no tty* under {args.dev}", flush=True)
    if adapters:
        print("USB serial adapters: " + "; ".join(adapters), flush=True)
    print("Remove the USB cable from the servo adapter and press Enter when done.", flush=True)
    if not sys.stdin.readline():
        raise CLIError("input closed before Enter was pressed")
    deadline = time.monotonic() + SETTLE_S
    while True:
        now = serial_ports(args.dev)
        gone = [p for p in before if p not in now]
        if gone or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not gone:
        raise CLIError("no port disappeared: was the adapter's USB cable removed (not its power)? Run "
                       "`edge find-port` again with the adapter plugged in")
    if len(gone) > 1:
        raise CLIError(f"more than one port disappeared ({', '.join(gone)}): unplug only the servo adapter and run "
                       "`edge find-port` again")
    port, stable = gone[0], before[gone[0]]
    print(f"The port of this adapter is '{port}'" + (f", stable name '{stable}'" if stable else ""))
    print("In the robot file (or --port):")
    print(f"  port: {stable or port}")
    if stable is None:
        print(f"({port} has no /dev/serial/by-id/ name; it may change when other USB devices are plugged in)")
    print("Reconnect the USB cable.")
    return 0
