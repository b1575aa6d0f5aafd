"""Servo bus cycle: sync read Present_Position + sync write Goal_Position, 6 servos, emulated wire timing.

Measured through `DynamixelBus` and the pty emulator (which models wire time from the baud rate, Return
Delay Time 0), next to the wire-time limit computed from the packets' byte counts, and the loop rate
each leaves; with and without the safety layer's per-tick read-back (one 1-byte sync read of Torque_Enable or
Bus_Watchdog, alternately), whose cost per tick is the difference. Usage: python benchmarks/bench_bus.py [--cycles N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import publish  # noqa: E402
from firmware_bridge import tables  # noqa: E402
from firmware_bridge.bus import DynamixelBus  # noqa: E402
from firmware_bridge.emulator import ServoEmulator, default_arm_motors  # noqa: E402
from firmware_bridge.protocol import (  # noqa: E402
    BROADCAST_ID,
    FAST_SYNC_READ,
    SYNC_READ,
    SYNC_WRITE,
    encode,
    encode_status,
)

SERVOS = 6
REGISTERS = tables.model("xl430-w250").registers
PRESENT, GOAL = REGISTERS["Present_Position"], REGISTERS["Goal_Position"]
DATA = PRESENT.size  # Present_Position / Goal_Position are 4 bytes


def read_bytes(fast: bool, address: int, size: int) -> int:
    """Bytes on the wire for one sync read of `size` bytes from every servo (request and replies)."""
    ids = bytes(range(1, SERVOS + 1))
    request = encode(BROADCAST_ID, FAST_SYNC_READ if fast else SYNC_READ,
                     address.to_bytes(2, "little") + size.to_bytes(2, "little") + ids)
    if fast:  # one reply: header, id, len, inst, then ERR ID DATA CRC per servo
        return len(request) + 8 + SERVOS * (size + 4)
    return len(request) + SERVOS * len(encode_status(1, 0, bytes(size)))


def wire_bytes(fast: bool, readback: bool) -> int:
    """Bytes on the wire for one cycle, from the codec's own packets (Return Delay Time 0)."""
    write = encode(BROADCAST_ID, SYNC_WRITE,
                   GOAL.address.to_bytes(2, "little") + DATA.to_bytes(2, "little") + bytes(SERVOS * (1 + DATA)))
    extra = read_bytes(fast, REGISTERS["Torque_Enable"].address, 1) if readback else 0
    return read_bytes(fast, PRESENT.address, DATA) + extra + len(write)


def measure(baudrate: int, fast: bool, readback: bool, cycles: int) -> tuple[list[float], int]:
    """Seconds per read+write cycle (plus the read-back when asked), and the retries the bus needed."""
    with ServoEmulator.arm(baudrate=baudrate) as emulator:
        # Generous reply slack: the emulator answers from a Python thread that a loaded machine can starve.
        bus = DynamixelBus(emulator.port, default_arm_motors(), baudrate=baudrate, timeout_slack_ms=15.0)
        bus.connect()
        try:
            bus.configure()
            bus.use_fast_sync_read = fast
            times = []
            for k in range(cycles + 20):
                start = time.perf_counter()
                present = bus.sync_read("Present_Position")
                if readback:  # what SafetyLayer.observe adds to every tick
                    bus.sync_read(("Torque_Enable", "Bus_Watchdog")[k % 2])
                bus.sync_write("Goal_Position", present)
                times.append(time.perf_counter() - start)
            return times[20:], bus.stats.retries
        finally:
            bus.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    rows = ["| baud | sync read | read-back | bytes/cycle | wire limit (ms) | measured median (ms) | p99 (ms) "
            "| loop rate it leaves (Hz) | wire-limited rate (Hz) | retries |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for baudrate in (1_000_000, 4_000_000):
        for fast in (False, True):
            for readback in (False, True):
                n_bytes = wire_bytes(fast, readback)
                wire_ms = n_bytes * 10 / baudrate * 1000
                times, retries = measure(baudrate, fast, readback, args.cycles)
                times.sort()
                median = statistics.median(times) * 1000
                p99 = times[int(0.99 * (len(times) - 1))] * 1000
                rows.append(f"| {baudrate / 1e6:g} Mbps | {'fast' if fast else 'plain'} "
                            f"| {'yes' if readback else 'no'} | {n_bytes} | {wire_ms:.2f} | {median:.2f} | {p99:.2f} | {1000 / median:.0f} "
                            f"| {1000 / wire_ms:.0f} | {retries} |")
    table = "\n".join(rows)
    notes = (f"\n\n{SERVOS} servos, {args.cycles} cycles each; one cycle = sync read of Present_Position + sync write "
             "of Goal_Position; with read-back, also the safety layer's per-tick 1-byte sync read of Torque_Enable or "
             "Bus_Watchdog (alternately): its cost per tick is the difference between a pair of rows. Wire limit = "
             "bytes x 10 bits / baud (8N1), Return Delay Time 0, no USB latency: on a "
             "real U2D2/FTDI adapter add about 2 x latency_timer per read (1 ms each once set to 1 ms). The measured "
             "time includes the Python SDK, the pty and the emulator thread's scheduling (same process, so p99 mostly "
             "measures that thread's jitter, not the bus).")
    publish("bus", "Servo bus cycle (firmware_bridge)", "benchmarks/bench_bus.py", table + notes,
            write=not args.no_write)


if __name__ == "__main__":
    main()
