"""Register semantics of the emulated X-series servos, each checked against the e-manual over a pty with the real SDK.

Sources: ROBOTIS-GIT/emanual, docs/en/dxl/x/<model>.md and the _includes/en/dxl/... files they pull in
(cited per test).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dynamixel_sdk import COMM_SUCCESS, PortHandler

from firmware_bridge import protocol, tables
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.emulator import ServoEmulator
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


def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_input_voltage_error_shuts_down_only_where_shutdown_says(trio) -> None:
    # control_table_shutdown.md: an error sets its Hardware Error Status bit and the status Alert bit; only the bits
    # selected in Shutdown(63) turn torque off (XL430 factory 52 leaves input voltage out; XL330 53 includes it).
    emulator, bus = trio
    bus.write("Max_Voltage_Limit", "a", 100)  # the XL430's 11.1 V supply is now "too high"
    assert bus.read("Hardware_Error_Status", "a") == tables.HW_INPUT_VOLTAGE and "a" in bus.alerts
    bus.write("Torque_Enable", "a", 1)
    assert bus.read("Torque_Enable", "a") == 1
    bus.write("Torque_Enable", "a", 0)
    bus.write("Max_Voltage_Limit", "a", 140)
    bus.reboot("a")
    assert bus.read("Hardware_Error_Status", "a") == 0 and "a" not in bus.alerts
    with ServoEmulator({1: "xl330-m288"}, timing=False) as xl330:
        with DynamixelBus(xl330.port, {"j": (1, "xl330-m288")}, timeout_slack_ms=EMULATOR_SLACK_MS) as small:
            small.write("Min_Voltage_Limit", "j", 60)  # above its 5.0 V supply
            with pytest.raises(BusError, match="torque stayed off"):
                small.enable_torque()


def test_reg_write_waits_for_action(trio) -> None:
    # protocol2.md, Reg Write / Action: registered, Registered Instruction reads 1, executed on ACTION.
    emulator, bus = trio
    port = bus._port
    handler = StuffingPacketHandler()
    assert handler.regWriteTxRx(port, 2, 65, 1, [1]) == (COMM_SUCCESS, 0)
    assert (bus.read("LED", "b"), bus.read("Registered_Instruction", "b")) == (0, 1)
    assert handler.action(port, 2) == COMM_SUCCESS
    time.sleep(0.02)
    assert (bus.read("LED", "b"), bus.read("Registered_Instruction", "b")) == (1, 0)
    replies = status_packets_after(port, protocol.encode(2, protocol.ACTION))
    assert replies[0].params[0] == tables.ERR_INSTRUCTION  # "Action has been used without Reg Write"


def test_clear_reseats_a_stopped_multi_turn_position(trio) -> None:
    # protocol2.md, Clear (0x10, 0x01 44 58 4C 22): Present Position back inside one turn; Result Fail while moving.
    emulator, bus = trio
    bus.write("Operating_Mode", "a", 4)
    emulator.set_shaft(1, 4096 * 3 + 100)
    assert bus.read("Present_Position", "a") == 4096 * 3 + 100
    clear = protocol.encode(1, protocol.CLEAR, bytes([0x01, 0x44, 0x58, 0x4C, 0x22]))
    assert status_packets_after(bus._port, clear)[0].params[0] == 0
    assert bus.read("Present_Position", "a") == 100
    bus.write("Torque_Enable", "a", 1)
    bus.write("Goal_Position", "a", 3000)
    time.sleep(0.05)
    assert status_packets_after(bus._port, clear)[0].params[0] == tables.ERR_RESULT_FAIL


def test_indirect_data_reads_and_writes_where_its_address_points(trio) -> None:
    # control_table_indirect_data: Indirect Data n stands for the byte at Indirect Address n.
    emulator, bus = trio
    for k in range(4):
        bus.write(f"Indirect_Address_{k + 1}", "a", 132 + k)  # Present_Position
        bus.write(f"Indirect_Address_{k + 5}", "a", 116 + k)  # Goal_Position
    present = bus.read("Present_Position", "a")
    port, handler = bus._port, StuffingPacketHandler()
    data, result, error = handler.readTxRx(port, 1, 224, 4)
    assert (result, error) == (COMM_SUCCESS, 0) and int.from_bytes(bytes(data), "little") == present
    assert handler.writeTxRx(port, 1, 228, 4, list((present + 7).to_bytes(4, "little"))) == (COMM_SUCCESS, 0)
    assert bus.read("Goal_Position", "a") == present + 7
    bus.write("Max_Position_Limit", "a", present)  # the goal's own checks apply through the indirection
    result, error = handler.writeTxRx(port, 1, 228, 4, list((present + 9).to_bytes(4, "little")))
    assert error == tables.ERR_DATA_LIMIT and bus.read("Goal_Position", "a") == present + 7


def test_undefined_addresses_and_partial_registers_are_refused(trio) -> None:
    # protocol2.md, Error: access error for an undefined address (or outside the table on READ), data length error
    # for part of a register.
    emulator, bus = trio
    port, handler = bus._port, StuffingPacketHandler()
    assert handler.writeTxRx(port, 1, 14, 1, [0]) == (COMM_SUCCESS, tables.ERR_ACCESS)  # 14..19: reserved
    assert handler.writeTxRx(port, 1, 116, 2, [0, 0]) == (COMM_SUCCESS, tables.ERR_DATA_LENGTH)
    assert handler.readTxRx(port, 1, 660, 4)[2] == tables.ERR_ACCESS  # past 661, the last XL430 address


def test_time_based_profile_takes_the_programmed_time(trio) -> None:
    # drive_mode.md bit 2 and control_table_profile_velocity.md: Profile Velocity is the move's time span in ms,
    # Profile Acceleration its acceleration time.
    emulator, bus = trio
    bus.write("Drive_Mode", "a", 4)
    bus.write("Profile_Velocity", "a", 400)
    bus.write("Profile_Acceleration", "a", 100)
    start = bus.read("Present_Position", "a")
    bus.write("Goal_Position", "a", start)
    bus.write("Torque_Enable", "a", 1)
    began = time.monotonic()
    bus.write("Goal_Position", "a", start + 300)
    time.sleep(0.25)
    assert start + 60 < bus.read("Position_Trajectory", "a") < start + 300
    wait_for(lambda: bus.read("Moving", "a") == 0)
    assert 0.35 < time.monotonic() - began < 0.7
    wait_for(lambda: bus.read("Present_Position", "a") == start + 300)  # settled on the goal


def test_torque_on_by_goal_update(trio) -> None:
    # drive_mode.md bit 3: with torque off, a goal write turns torque on and the servo moves.
    emulator, bus = trio
    bus.write("Drive_Mode", "b", 8)
    start = bus.read("Present_Position", "b")
    bus.write("Goal_Position", "b", start + 100)
    assert bus.read("Torque_Enable", "b") == 1
    wait_for(lambda: bus.read("Present_Position", "b") == start + 100)


def test_operating_mode_change_resets_profile_gains_and_goal_pwm(trio) -> None:
    # operating_mode_xl.md NOTE: gains reset for the mode, Profile Velocity/Acceleration to 0, Goal PWM to PWM Limit.
    emulator, bus = trio
    bus.write("Profile_Velocity", "a", 100)
    bus.write("Position_P_Gain", "a", 1500)
    bus.write("PWM_Limit", "a", 500)
    bus.write("Goal_PWM", "a", 200)
    bus.write("Operating_Mode", "a", 4)
    assert bus.read("Profile_Velocity", "a") == 0 and bus.read("Position_P_Gain", "a") == 640
    assert bus.read("Goal_PWM", "a") == 500
    with pytest.raises(BusError, match="data limit error"):
        bus.write("Goal_PWM", "a", 600)  # beyond PWM_Limit


def test_position_mode_ignores_a_homing_offset_beyond_1024(trio) -> None:
    # homing_offset.md NOTE: in Position Control Mode invalid Homing Offset values (valid: -1,024 ~ 1,024) are
    # ignored; extended position mode applies them.
    emulator, bus = trio
    raw = bus.read("Present_Position", "a")
    bus.write("Homing_Offset", "a", 1024)
    assert bus.read("Present_Position", "a") == raw + 1024
    bus.write("Homing_Offset", "a", 1500)
    assert bus.read("Present_Position", "a") == raw and bus.read("Homing_Offset", "a") == 1500
    bus.write("Operating_Mode", "a", 4)
    assert bus.read("Present_Position", "a") == raw + 1500


def test_velocity_mode_runs_at_the_goal_velocity_within_the_limit(trio) -> None:
    emulator, bus = trio
    bus.write("Operating_Mode", "a", 1)
    bus.write("Torque_Enable", "a", 1)
    with pytest.raises(BusError, match="data limit error"):
        bus.write("Goal_Velocity", "a", bus.read("Velocity_Limit", "a") + 1)
    bus.write("Goal_Velocity", "a", -100)
    wait_for(lambda: bus.read("Present_Velocity", "a") == -100)
    assert bus.read("Velocity_Trajectory", "a") == -100 and bus.read("Moving", "a") == 1


def test_protocol_type_1_stops_protocol_2_answers(trio) -> None:
    emulator, bus = trio
    bus.write("Protocol_Type", "b", 1)  # answered, then the servo speaks Protocol 1.0 only
    with pytest.raises(BusError, match=r"ping b failed.*\[b\]"):
        bus.ping("b")
