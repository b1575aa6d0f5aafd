"""DynamixelBus over a pty (or a real chain) with the real dynamixel-sdk: transactions, validation, timeouts."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import serial
from dynamixel_sdk import PacketHandler

from firmware_bridge import protocol
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.emulator import ServoEmulator, default_arm_motors


def test_connect_reads_models_and_firmware(bus: DynamixelBus, chain) -> None:
    assert set(bus.firmware) == set(chain.motors)
    assert bus.latency_timer_ms is None or chain.emulator is None  # a pty has no latency timer
    for name in chain.motors:
        assert bus.ping(name) == bus.motors[name][1].number
        if chain.emulator is not None:
            assert bus.read("Return_Delay_Time", name) == 0


def test_sync_write_then_sync_read_round_trip(bus: DynamixelBus) -> None:
    present = bus.sync_read("Present_Position")
    assert set(present) == set(bus.motors) and all(0 <= v <= 4095 for v in present.values())
    goals = {name: present[name] + i for i, name in enumerate(bus.motors)}
    bus.sync_write("Goal_Position", goals)  # torque is off: nothing moves
    assert bus.sync_read("Goal_Position") == goals
    assert {n: bus.read("Goal_Position", n) for n in bus.motors} == goals


def test_signed_registers_are_decoded(bus: DynamixelBus, emulator: ServoEmulator) -> None:  # writes EEPROM
    name = next(iter(bus.motors))
    bus.write("Homing_Offset", name, -1234)
    assert bus.read("Homing_Offset", name) == -1234
    assert bus.sync_read("Homing_Offset", [name]) == {name: -1234}
    bus.write("Homing_Offset", name, 0)


def test_fast_and_plain_sync_read_agree(bus: DynamixelBus) -> None:
    fast = bus.use_fast_sync_read
    bus.use_fast_sync_read = True
    a = bus.sync_read("Homing_Offset")
    bus.use_fast_sync_read = False
    b = bus.sync_read("Homing_Offset")
    bus.use_fast_sync_read = fast
    assert a == b


@pytest.mark.parametrize("model,firmware", [("xl330-m288", 45), ("xl430-w250", 44)])
def test_old_firmware_falls_back_to_plain_sync_read(model: str, firmware: int) -> None:
    # protocol2.md, Fast Sync Read: X430/540 from firmware 45, X330 from 46.
    with ServoEmulator({1: model, 2: model}, timing=False, firmware=firmware) as emu:
        bus = DynamixelBus(emu.port, {"a": (1, model), "b": (2, model)}, retries=0)
        bus.connect()
        assert not bus.use_fast_sync_read
        assert set(bus.sync_read("Present_Position")) == {"a", "b"}
        bus.use_fast_sync_read = True  # forced: servos that do not know FAST SYNC READ do not answer it
        with pytest.raises(BusError, match="sync read ID failed after 1 attempts"):
            bus.sync_read("ID")
        bus.disconnect()


def test_extended_position_value_with_ff_ff_fd_goes_out_stuffed(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    name = "gripper"
    bus.write("Operating_Mode", name, 4)
    value = -131073  # little-endian FF FF FD FF: must be sent as FF FF FD FD FF
    bus.write("Goal_Position", name, value)
    assert emulator.register(6, "Goal_Position") == value
    bus.sync_write("Goal_Position", {name: value + 1})
    bus.sync_write("Goal_Position", {name: value})
    assert bus.read("Goal_Position", name) == value  # and the stuffed status packet is decoded
    assert bus.sync_read("Goal_Position", [name]) == {name: value}
    assert emulator.register(6, "Goal_Position") == value


def test_plain_sdk_packet_with_ff_ff_fd_is_not_understood(emulator: ServoEmulator) -> None:
    from dynamixel_sdk import COMM_SUCCESS, PortHandler
    port = PortHandler(emulator.port)
    port.openPort()
    try:
        handler = PacketHandler(2.0)
        assert handler.write1ByteTxRx(port, 6, 11, 4)[0] == COMM_SUCCESS
        result, _ = handler.write4ByteTxRx(port, 6, 116, (-131073) & 0xFFFFFFFF)
        assert result != COMM_SUCCESS  # unstuffed FF FF FD reads as a new header
    finally:
        port.closePort()


def test_missing_servo_is_reported_in_milliseconds(emulator: ServoEmulator) -> None:
    motors = {**default_arm_motors(), "extra": (9, "xl430-w250")}
    bus = DynamixelBus(emulator.port, motors)
    start = time.perf_counter()
    with pytest.raises(BusError, match="extra") as info:
        bus.connect()
    assert time.perf_counter() - start < 0.1  # SDK default: 3 x ~34 ms
    assert info.value.motors == ("extra",) and "no reply" in str(info.value)
    assert not bus.is_connected


def test_wrong_model_is_named(emulator: ServoEmulator) -> None:
    motors = {**default_arm_motors(), "gripper": (6, "xm430-w350")}
    with pytest.raises(BusError, match=r"gripper is xl430-w250 \(1060\), expected xm430-w350 \(1020\)"):
        DynamixelBus(emulator.port, motors).connect()


@pytest.mark.parametrize("call,message", [
    (lambda b: b.read("Goal_Positon", "gripper"), "register 'Goal_Positon' does not exist"),
    (lambda b: b.write("Goal_Position", "grippr", 1), "unknown motor 'grippr'"),
    (lambda b: b.sync_read("Present_Position", ["gripper", "tail"]), "unknown motor 'tail'"),
    (lambda b: b.write("Goal_Position", "gripper", 2_000_000), r"Goal_Position for 'gripper': 2000000 outside"),
    (lambda b: b.sync_write("Goal_Position", {"gripper": 10, "elbow_flex": -2_000_000}), "elbow_flex"),
    (lambda b: b.write("Goal_Position", "gripper", 12.5), "not an integer"),
    (lambda b: b.write("Present_Position", "gripper", 1), "read-only"),
    (lambda b: b.write("Goal_Current", "gripper", 1), r"'Goal_Current' does not exist on 'gripper' \(xl430-w250\)"),
    (lambda b: b.write("Operating_Mode", "gripper", 0), "not supported by this model"),
])
def test_bad_input_is_named_and_nothing_is_sent(bus: DynamixelBus, emulator: ServoEmulator, call, message: str) -> None:
    before = emulator.instructions
    with pytest.raises(ValueError, match=message):
        call(bus)
    time.sleep(0.01)
    assert emulator.instructions == before


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="unknown Dynamixel model 'xl999'"):
        DynamixelBus("/dev/null", {"a": (1, "xl999")})
    with pytest.raises(ValueError, match="share id 1"):
        DynamixelBus("/dev/null", {"a": (1, "xl430-w250"), "b": (1, "xl430-w250")})
    with pytest.raises(ValueError, match="baudrate 12345"):
        DynamixelBus("/dev/null", {"a": (1, "xl430-w250")}, baudrate=12345)


def test_eeprom_write_with_torque_on_is_refused_by_the_servo(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.sync_write("Goal_Position", bus.sync_read("Present_Position"))
    bus.enable_torque(["gripper"])
    with pytest.raises(BusError, match=r"\[gripper\]: access error"):
        bus.write("Operating_Mode", "gripper", 4)
    bus.disable_torque(["gripper"])
    bus.write("Operating_Mode", "gripper", 4)
    bus.write("Operating_Mode", "gripper", 3)


def test_position_limit_is_enforced_by_the_servo(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.configure({"wrist_roll": {"Min_Position_Limit": 1000, "Max_Position_Limit": 3000}})
    assert bus.read("Max_Position_Limit", "wrist_roll") == 3000
    with pytest.raises(BusError, match="data limit error"):
        bus.write("Goal_Position", "wrist_roll", 3500)
    bus.configure({"wrist_roll": {"Min_Position_Limit": 0, "Max_Position_Limit": 4095}})


def test_disconnect_leaves_torque_off_and_port_free(chain) -> None:
    bus = chain.bus()
    bus.connect()
    bus.sync_write("Goal_Position", bus.sync_read("Present_Position"))
    bus.enable_torque()
    assert set(bus.sync_read("Torque_Enable").values()) == {1}
    bus.disconnect()
    bus.disconnect()
    assert not bus.is_connected
    with pytest.raises(BusError, match="not connected"):
        bus.read("Torque_Enable", "gripper")
    with chain.bus() as again:
        assert set(again.sync_read("Torque_Enable").values()) == {0}


def test_stale_bytes_are_drained_before_each_request(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    """A reply nobody collected sits in the input buffer; the next request starts by discarding it."""
    port = bus._port
    assert PacketHandler(2.0).readTx(port, 2, 20, 4) == 0  # Homing_Offset of shoulder_lift, reply left unread
    time.sleep(0.05)
    assert port.ser.in_waiting > 0
    emulator.set_register(2, "Homing_Offset", 55)
    assert bus.read("Homing_Offset", "shoulder_lift") == 55  # not the stale 0


def test_stuck_is_using_is_cleared(bus: DynamixelBus) -> None:
    bus._port.is_using = True  # what an interrupted SDK transaction leaves behind
    assert bus.read("ID", "gripper") == bus.motors["gripper"][0]


def test_retries_absorb_a_lost_and_a_corrupt_reply(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    emulator.drop_replies(2)
    assert bus.read("ID", "shoulder_lift") == 2
    emulator.corrupt_replies(3)
    assert set(bus.sync_read("Present_Position")) == set(bus.motors)
    assert bus.stats.retries >= 2 and bus.stats.failures == 0


def test_persistent_corruption_is_named(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    emulator.corrupt_replies(4, -1)
    with pytest.raises(BusError, match=r"\[wrist_flex\]: corrupt reply"):
        bus.sync_read("Present_Position")
    emulator.clear_faults()
    assert set(bus.sync_read("Present_Position")) == set(bus.motors)


def test_reboot_clears_a_hardware_shutdown(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    from firmware_bridge import tables
    emulator.hardware_error(1, tables.HW_OVERLOAD)
    bus.read("ID", "shoulder_pan")
    assert "shoulder_pan" in bus.alerts
    with pytest.raises(BusError, match="torque stayed off.*overload"):
        bus.enable_torque(["shoulder_pan"])
    bus.reboot("shoulder_pan")
    assert bus.read("Hardware_Error_Status", "shoulder_pan") == 0
    assert "shoulder_pan" not in bus.alerts


def test_latency_timer_warning_names_the_fix(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ttyUSB7").mkdir()
    (tmp_path / "ttyUSB7" / "latency_timer").write_text("16\n")
    assert protocol.usb_latency_timer_ms("/dev/ttyUSB7", tmp_path) == 16
    assert protocol.usb_latency_timer_ms("/dev/pts/3", tmp_path) is None
    monkeypatch.setattr(protocol, "USB_SERIAL_SYSFS", tmp_path)
    monkeypatch.setattr("firmware_bridge.bus.usb_latency_timer_ms", lambda p: protocol.usb_latency_timer_ms(p, tmp_path))
    monkeypatch.setattr("firmware_bridge.bus.latency_timer_file", lambda p: protocol.latency_timer_file(p, tmp_path))
    with caplog.at_level(logging.WARNING), pytest.raises(BusError, match="cannot open /dev/ttyUSB7"):
        DynamixelBus("/dev/ttyUSB7", {"a": (1, "xl430-w250")}).connect()
    assert f"echo 1 | sudo tee {tmp_path}/ttyUSB7/latency_timer" in caplog.text


def test_timeout_uses_latency_timer() -> None:
    port = protocol.TimedPortHandler("x", latency_ms=16.0, slack_ms=1.0)
    port.tx_time_per_byte = 0.01
    port.setPacketTimeout(100)
    assert port.packet_timeout == pytest.approx(1.0 + 32.0 + 1.0)


def test_port_can_be_reopened_by_pyserial_after_disconnect(chain) -> None:
    bus = chain.bus()
    bus.connect()
    bus.disconnect()
    serial.Serial(chain.port, 1_000_000, timeout=0).close()


def test_lost_port_is_a_bus_error_and_disconnect_still_releases(chain) -> None:
    bus = chain.bus()
    bus.connect()
    bus._port.ser.close()  # what an unplugged adapter looks like to pyserial
    with pytest.raises(BusError, match=r"\[gripper\]: port error"):
        bus.read("ID", "gripper")
    bus.disconnect()
    assert not bus.is_connected


def test_a_factory_set_chain_answers_a_plain_sync_read_at_the_default_slack() -> None:
    """Six servos at the factory Return Delay Time (250: 0.5 ms each, one reply after the other) answer a plain sync
    read in about 3.7 ms of wire and delays: the reply timeout must count the delays (before it did not, and a
    fresh `edge emulate` or a factory chain failed to connect whenever the fast read's one attempt failed)."""
    with ServoEmulator.arm() as emulator:
        bus = DynamixelBus(emulator.port, default_arm_motors())  # the default 3 ms slack
        bus.connect()
        try:
            assert bus.return_delay_us == {m: 500 for m in bus.motors}  # read at connect
            bus.use_fast_sync_read = False
            for _ in range(5):
                assert bus.sync_read("Torque_Enable") == {m: 0 for m in bus.motors}
            bus.write("Return_Delay_Time", "gripper", 10)
            assert bus.return_delay_us["gripper"] == 20  # tracked through writes
        finally:
            bus.disconnect()


def test_a_port_held_by_another_bus_is_refused_naming_it() -> None:
    with ServoEmulator.arm(timing=False) as emulator:
        first = DynamixelBus(emulator.port, default_arm_motors(), timeout_slack_ms=15)
        first.connect()
        try:
            second = DynamixelBus(emulator.port, default_arm_motors(), timeout_slack_ms=15)
            heard = emulator.instructions
            with pytest.raises(BusError, match=f"connect: {emulator.port} is in use by this program"):
                second.connect()
            assert emulator.instructions == heard and not second.is_connected  # nothing was sent
        finally:
            first.disconnect()
        second.connect()  # free again once the first released it
        second.disconnect()
