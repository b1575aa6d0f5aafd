"""The emulator's register semantics, dynamics, instructions and timing, driven through the real SDK."""

from __future__ import annotations

import time

import pytest
from dynamixel_sdk import COMM_SUCCESS, GroupBulkRead, GroupBulkWrite

from edge.cli import build_parser
from edge.errors import CLIError
from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator, default_arm_motors
from firmware_bridge.errors import RequestError
from firmware_bridge.protocol import StuffingPacketHandler
from tests.firmware_bridge.lerobot_calls import SharingPortHandler


@pytest.fixture(autouse=True)
def _emulator_only(emulator: ServoEmulator) -> None:
    """This module tests the emulator itself (and rewrites EEPROM, moves joints far): skipped on hardware."""


def wait_until(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_moves_toward_goal_under_profile_velocity(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.write("Profile_Velocity", "elbow_flex", 50)  # 50 x 0.229 rpm = 782 ticks/s
    start = bus.read("Present_Position", "elbow_flex")
    bus.sync_write("Goal_Position", bus.sync_read("Present_Position"))
    bus.enable_torque()
    bus.write("Goal_Position", "elbow_flex", start + 400)
    time.sleep(0.2)
    mid = bus.read("Present_Position", "elbow_flex")
    assert start + 50 < mid < start + 400
    assert bus.read("Present_Velocity", "elbow_flex") == pytest.approx(50, abs=2)
    assert bus.read("Moving", "elbow_flex") == 1
    assert 0 < bus.read("Present_Load", "elbow_flex")  # friction while it turns
    assert wait_until(lambda: bus.sync_read("Present_Velocity", ["elbow_flex"]) == {"elbow_flex": 0}
                      and bus.read("Present_Position", "elbow_flex") == start + 400)  # settled on the goal
    assert bus.read("Present_Load", "elbow_flex") == 0  # an unloaded joint held still needs no torque
    assert bus.read("Present_Temperature", "elbow_flex") >= 25


def test_homing_offset_and_drive_mode(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    raw = bus.read("Present_Position", "wrist_flex")
    bus.write("Homing_Offset", "wrist_flex", 100)
    assert bus.read("Present_Position", "wrist_flex") == raw + 100
    bus.write("Drive_Mode", "wrist_flex", 1)  # reverse: the count runs the other way, inside one turn
    mirrored = (-raw) % 4096
    assert bus.read("Present_Position", "wrist_flex") == mirrored + 100
    bus.write("Operating_Mode", "wrist_flex", 4)
    bus.write("Goal_Position", "wrist_flex", mirrored + 100 + 50)
    bus.enable_torque(["wrist_flex"])
    assert wait_until(lambda: bus.read("Present_Position", "wrist_flex") == mirrored + 150)
    assert emulator.servos[4].motor.shaft == raw - 50  # +50 in reverse is -50 at the shaft


def test_torque_on_goes_to_the_stored_goal(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    # Why the safety layer writes goal = present first: the servo drives to whatever goal is stored.
    present = bus.read("Present_Position", "gripper")
    bus.write("Goal_Position", "gripper", present + 300)
    bus.enable_torque(["gripper"])
    assert wait_until(lambda: bus.read("Present_Position", "gripper") == present + 300)


def test_bus_watchdog_stops_the_servo_and_locks_goals(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.write("Profile_Velocity", "shoulder_pan", 20)
    start = bus.read("Present_Position", "shoulder_pan")
    bus.write("Goal_Position", "shoulder_pan", start)
    bus.enable_torque(["shoulder_pan"])
    bus.write("Bus_Watchdog", "shoulder_pan", 2)  # 40 ms
    bus.write("Goal_Position", "shoulder_pan", start + 2000)
    time.sleep(0.15)  # no traffic: the watchdog fires
    stopped = emulator.register(1, "Present_Position")
    assert emulator.register(1, "Bus_Watchdog") == 255
    assert start < stopped < start + 2000
    time.sleep(0.05)
    assert emulator.register(1, "Present_Position") == stopped
    with pytest.raises(Exception, match="data range error"):
        bus.write("Goal_Position", "shoulder_pan", start)
    bus.write("Bus_Watchdog", "shoulder_pan", 0)
    bus.write("Goal_Position", "shoulder_pan", start)


def test_hardware_error_shuts_torque_off_until_reboot(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.sync_write("Goal_Position", bus.sync_read("Present_Position"))
    bus.enable_torque()
    emulator.hardware_error(4, tables.HW_OVERHEATING)
    assert bus.read("Torque_Enable", "wrist_flex") == 0
    assert bus.read("Hardware_Error_Status", "wrist_flex") == tables.HW_OVERHEATING
    bus.write("Torque_Enable", "wrist_flex", 1)
    assert bus.read("Torque_Enable", "wrist_flex") == 0
    bus.reboot("wrist_flex")
    bus.write("Torque_Enable", "wrist_flex", 1)
    assert bus.read("Torque_Enable", "wrist_flex") == 1


def test_factory_reset_and_status_return_level(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.write("Homing_Offset", "gripper", 77)
    port, handler = bus._port, StuffingPacketHandler()
    assert handler.factoryReset(port, 6, 0x02) == (COMM_SUCCESS, 0)
    assert bus.read("Homing_Offset", "gripper") == 0 and bus.read("ID", "gripper") == 6
    assert bus.read("Return_Delay_Time", "gripper") == 250
    with pytest.raises(Exception, match="no status packet"):  # level 1: WRITE gets no reply, still lands
        bus.write("Status_Return_Level", "gripper", 1)
    with pytest.raises(Exception, match="no status packet"):
        bus.write("LED", "gripper", 1)
    assert bus.read("LED", "gripper") == 1


def test_bulk_read_and_bulk_write_through_the_sdk(bus: DynamixelBus) -> None:
    port, handler = bus._port, StuffingPacketHandler()
    writer = GroupBulkWrite(port, handler)
    assert writer.addParam(1, 65, 1, [1]) and writer.addParam(2, 20, 4, list((-5).to_bytes(4, "little", signed=True)))
    assert writer.txPacket() == COMM_SUCCESS
    reader = GroupBulkRead(port, handler)
    assert reader.addParam(1, 65, 1) and reader.addParam(2, 20, 4)
    assert reader.txRxPacket() == COMM_SUCCESS
    assert reader.getData(1, 65, 1) == 1
    assert reader.getData(2, 20, 4) == (-5) & 0xFFFFFFFF


def test_broadcast_ping_finds_every_servo(bus: DynamixelBus) -> None:
    found, result = StuffingPacketHandler().broadcastPing(bus._port)
    assert result == COMM_SUCCESS
    assert {i: v[0] for i, v in found.items()} == {i: 1060 for i in range(1, 7)}


def test_vanished_servo_comes_back(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    emulator.vanish(3)
    with pytest.raises(Exception, match=r"\[elbow_flex\]"):
        bus.sync_read("Present_Position")
    emulator.reappear(3)
    assert set(bus.sync_read("Present_Position")) == set(bus.motors)


def test_delayed_reply_within_and_beyond_the_timeout(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    emulator.delay_replies(2, 0.001)
    assert bus.read("ID", "shoulder_lift") == 2
    emulator.delay_replies(2, 0.3, count=-1)
    with pytest.raises(Exception, match="shoulder_lift"):
        bus.read("ID", "shoulder_lift")
    emulator.clear_faults()
    time.sleep(0.35)
    assert bus.read("ID", "shoulder_lift") == 2


@pytest.mark.parametrize("baudrate", [1_000_000, 4_000_000])
def test_wire_timing_is_modelled(baudrate: int) -> None:
    with ServoEmulator.arm(baudrate=baudrate) as emu:
        bus = DynamixelBus(emu.port, default_arm_motors(), baudrate=baudrate)
        bus.connect()
        bus.configure()
        bus.use_fast_sync_read = False
        times = []
        for _ in range(20):
            start = time.perf_counter()
            bus.sync_read("Present_Position")
            times.append(time.perf_counter() - start)
        wire = (14 + 6 + 6 * 15) * 10 / baudrate
        # Never faster than the wire allows; the upper bound only guards against gross over-delay (a
        # median, so one scheduling hiccup of a shared CI core does not decide it).
        assert wire <= min(times) and sorted(times)[10] < wire + 0.01
        bus.disconnect()


def test_emulate_command_parses_and_validates() -> None:
    parser = build_parser()
    args = parser.parse_args(["emulate", "--servos", "3", "--model", "xl330-m288", "--ids", "4,5,6"])
    assert (args.servos, args.model, args.ids) == (3, "xl330-m288", "4,5,6")
    with pytest.raises(CLIError, match="--servos 2 but 3 ids"):
        args._run(parser.parse_args(["emulate", "--servos", "2", "--ids", "1,2,3"]))
    with pytest.raises(CLIError, match="distinct"):
        args._run(parser.parse_args(["emulate", "--ids", "1,1"]))


def test_emulate_command_rejects_a_model_list_that_does_not_fit() -> None:
    parser = build_parser()
    with pytest.raises(CLIError, match="names 2 models for 3 ids"):
        args = parser.parse_args(["emulate", "--ids", "1,2,3", "--model", "xl430-w250,xl330-m288"])
        args._run(args)
    with pytest.raises(RequestError, match="unknown Dynamixel model 'xl999'"):
        args = parser.parse_args(["emulate", "--model", "xl999"])
        args._run(args)


def test_emulate_command_serves_until_interrupted() -> None:
    import os
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "emulate", "--servos", "2", "--no-timing",
                             "--model", "xl430-w250,xl330-m288"], stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        with DynamixelBus(port, {"a": (1, "xl430-w250"), "b": (2, "xl330-m288")}) as bus:  # a mixed chain
            assert set(bus.sync_read("Present_Position")) == {"a", "b"}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.stdout.close()


def test_raw_sdk_port_handler_works_against_the_emulator() -> None:
    with ServoEmulator({1: "xm430-w350"}, timing=False) as emu:
        port = SharingPortHandler(emu.port)  # the SDK's PortHandler, yielding the GIL while it waits
        assert port.openPort()
        number, result, error = StuffingPacketHandler().ping(port, 1)
        assert (number, result, error) == (1020, COMM_SUCCESS, 0)
        port.closePort()


def test_malformed_instruction_gets_a_length_error_and_the_emulator_keeps_serving(bus: DynamixelBus,
                                                                                   emulator: ServoEmulator) -> None:
    from firmware_bridge import protocol as P
    port = bus._port
    port.clearPort()
    port.writePort(P.encode(2, P.READ, b"\x84"))  # READ needs 4 parameter bytes
    port.setPacketTimeout(11)
    packet, result = StuffingPacketHandler().rxPacket(port, False)
    assert result == COMM_SUCCESS and packet[8] == tables.ERR_DATA_LENGTH
    assert bus.read("ID", "shoulder_lift") == 2


def test_a_burst_faster_than_the_wire_delays_the_next_reply() -> None:
    """Packets written faster than 1 Mbps queue up (an adapter's buffer): the reply comes after they have gone out."""
    from firmware_bridge import protocol as P
    with ServoEmulator.arm() as emulator:  # wire timing on
        bus = DynamixelBus(emulator.port, default_arm_motors(), timeout_slack_ms=100.0)
        bus.connect()
        goals = b"".join(bytes([i]) + (2048).to_bytes(4, "little") for i in range(1, 7))
        burst = P.encode(P.BROADCAST_ID, P.SYNC_WRITE, (116).to_bytes(2, "little") + (4).to_bytes(2, "little") + goals)
        port = bus._port
        start = time.perf_counter()
        port.ser.write(burst * 50)  # 50 sync writes in one go: 50 x 44 bytes = 22 ms of wire at 1 Mbps
        assert bus.read("ID", "gripper") == 6
        elapsed = time.perf_counter() - start
        bus.disconnect()
    assert elapsed >= 0.9 * 50 * len(burst) * 10 / 1_000_000
