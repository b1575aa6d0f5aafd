"""Hardware-in-the-loop fixtures: a real chain when --dxl-port is given, else the pty emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dynamixel_sdk import COMM_SUCCESS, PacketHandler, PortHandler

from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ARM_JOINTS, ServoEmulator

# Reply-timeout slack against the emulator: its replies come from a Python thread that a loaded
# 2-core CI machine can starve for several ms; real servos answer on time and keep the 3 ms default.
EMULATOR_SLACK_MS = 15.0


@dataclass
class Chain:
    """What a test talks to: the port, the motors on it, and the emulator (None on real hardware)."""

    port: str
    motors: dict[str, tuple[int, str]]
    emulator: ServoEmulator | None

    def bus(self) -> DynamixelBus:
        """An unconnected bus for this chain."""
        if self.emulator is None:
            return DynamixelBus(self.port, self.motors)
        return DynamixelBus(self.port, self.motors, timeout_slack_ms=EMULATOR_SLACK_MS)


def _names(ids: list[int]) -> list[str]:
    return list(ARM_JOINTS[: len(ids)]) if len(ids) <= len(ARM_JOINTS) else [f"motor_{i}" for i in ids]


def _real_motors(port: str, ids: list[int]) -> dict[str, tuple[int, str]]:
    """Ping each id once with the plain SDK to learn its model."""
    handler, packets = PortHandler(port), PacketHandler(2.0)
    if not handler.openPort() or not handler.setBaudRate(1_000_000):
        pytest.fail(f"cannot open {port} at 1 Mbps")
    try:
        motors = {}
        for name, servo_id in zip(_names(ids), ids):
            number, result, _ = packets.ping(handler, servo_id)
            if result != COMM_SUCCESS or number not in tables.MODEL_BY_NUMBER:
                pytest.fail(f"id {servo_id} on {port}: no reply or unknown model number {number}")
            motors[name] = (servo_id, tables.MODEL_BY_NUMBER[number].name)
        return motors
    finally:
        handler.closePort()


@pytest.fixture
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A 6-servo emulated arm (no wire timing), or the real chain named by --dxl-port/--dxl-ids."""
    port = request.config.getoption("--dxl-port")
    if port:
        ids_option = request.config.getoption("--dxl-ids")
        if not ids_option:
            pytest.fail("--dxl-port needs --dxl-ids, e.g. --dxl-ids 1,2,3")
        yield Chain(port, _real_motors(port, [int(i) for i in ids_option.split(",")]), None)
        return
    with ServoEmulator.arm(timing=False) as emulator:
        motors = {name: (i, "xl430-w250") for i, name in enumerate(ARM_JOINTS, start=1)}
        yield Chain(emulator.port, motors, emulator)


@pytest.fixture
def emulator(chain: Chain) -> ServoEmulator:
    """The emulator behind `chain`; skips on real hardware (fault injection, register peeking)."""
    if chain.emulator is None:
        pytest.skip("needs the emulator (fault injection / register inspection)")
    return chain.emulator


@pytest.fixture
def bus(chain: Chain) -> Iterator[DynamixelBus]:
    """A connected bus, torque off and port released after. On the emulator it is also configured
    (position mode, Return Delay Time 0); a real arm's EEPROM is left as calibrated."""
    bus = chain.bus()
    bus.connect()
    if chain.emulator is not None:
        bus.configure()
    yield bus
    bus.disconnect()
