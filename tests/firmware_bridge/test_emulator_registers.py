"""Register semantics of the emulated X-series servos, each checked against the e-manual over a pty with the real SDK.

Sources: ROBOTIS-GIT/emanual, docs/en/dxl/x/<model>.md and the _includes/en/dxl/... files they pull in
(cited per test).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dynamixel_sdk import COMM_SUCCESS, PortHandler

from firmware_bridge import DynamixelBus, ServoEmulator, protocol
from firmware_bridge.protocol import StuffingPacketHandler
from tests.firmware_bridge.conftest import EMULATOR_SLACK_MS

MOTORS = {"a": (1, "xl430-w250"), "b": (2, "xl430-w250"), "shadow": (3, "xl430-w250")}


@pytest.fixture
def trio() -> Iterator[tuple[ServoEmulator, DynamixelBus]]:
    """Three XL430s (ids 1..3) and a connected bus; Return_Delay_Time 0."""
    with ServoEmulator({i: m for i, m in MOTORS.values()}, timing=False) as emulator:
        bus = DynamixelBus(emulator.port, MOTORS, timeout_slack_ms=EMULATOR_SLACK_MS)
        bus.connect()
        for name in MOTORS:
            bus.write("Return_Delay_Time", name, 0)
        try:
            yield emulator, bus
        finally:
            bus.disconnect()


def status_packets_after(port: PortHandler, packet: bytes, wait_s: float = 0.05) -> list[protocol.Packet]:
    """Send one raw packet and collect every status packet the chain answers with."""
    port.clearPort()
    port.writePort(packet)
    time.sleep(wait_s)
    return list(protocol.PacketReader().feed(bytes(port.ser.read(port.ser.in_waiting))))


def test_secondary_id_executes_the_primarys_writes_silently(trio) -> None:
    # e-manual _includes/en/dxl/x/shadow_id.md: a servo whose Secondary ID equals a packet's ID executes it but
    # returns no status packet; EEPROM cannot be modified through the Secondary ID; the primary ID has priority.
    emulator, bus = trio
    bus.write("Secondary_ID", "shadow", 2)
    port = bus._port
    replies = status_packets_after(port, protocol.encode(2, protocol.WRITE, bytes([65, 0, 1])))  # LED = 1
    assert [(p.id, p.instruction) for p in replies] == [(2, protocol.INST_STATUS)]
    assert bus.read("LED", "shadow") == 1 and bus.read("LED", "a") == 0  # read back through its own ID
    replies = status_packets_after(port, protocol.encode(2, protocol.READ, bytes([7, 0, 1, 0])))  # ID
    assert [(p.id, p.params) for p in replies] == [(2, b"\x00\x02")]
    assert [p.id for p in status_packets_after(port, protocol.encode(2, protocol.PING))] == [2]
    bus.write("Homing_Offset", "b", 321)  # EEPROM: not through the Secondary ID
    assert (bus.read("Homing_Offset", "b"), bus.read("Homing_Offset", "shadow")) == (321, 0)
    assert bus.read("Secondary_ID", "shadow") == 2


def test_shadow_follows_the_primary_in_sync_writes_and_stays_out_of_sync_reads(trio) -> None:
    emulator, bus = trio
    bus.write("Secondary_ID", "shadow", 2)
    for fast in (True, False):
        bus.use_fast_sync_read = fast
        assert bus.sync_read("ID", ["a", "b"]) == {"a": 1, "b": 2}  # one reply per listed ID, none from the shadow
        assert bus.sync_read("ID") == {"a": 1, "b": 2, "shadow": 3}
    present = bus.sync_read("Present_Position")
    bus.sync_write("Goal_Position", {"a": present["a"], "b": present["b"]})
    bus.sync_write("Torque_Enable", {"a": 1, "b": 1})
    assert bus.read("Torque_Enable", "shadow") == 1
    bus.sync_write("Goal_Position", {"a": present["a"], "b": present["b"] + 200})
    assert bus.read("Goal_Position", "shadow") == present["b"] + 200
    deadline = time.monotonic() + 3
    while emulator.register(3, "Present_Position") != present["b"] + 200:
        assert time.monotonic() < deadline, "the shadow did not follow its primary's goal"
        time.sleep(0.01)
    bus.sync_write("Goal_Position", {"a": present["a"], "shadow": present["shadow"]})  # its own ID's block wins
    assert bus.read("Goal_Position", "shadow") == present["shadow"]


def test_secondary_id_equal_to_own_id_or_253_and_above_is_plain(trio) -> None:
    emulator, bus = trio
    port = bus._port
    bus.write("Secondary_ID", "shadow", 3)  # same as its ID: answers as the primary
    assert [p.id for p in status_packets_after(port, protocol.encode(3, protocol.PING))] == [3]
    bus.write("Secondary_ID", "shadow", 253)  # off
    bus.write("LED", "b", 1)
    assert bus.read("LED", "shadow") == 0
    handler = StuffingPacketHandler()
    found, result = handler.broadcastPing(port)
    assert result == COMM_SUCCESS and sorted(found) == [1, 2, 3]
