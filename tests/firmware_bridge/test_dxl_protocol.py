"""Protocol 2.0 codec against every packet the e-manual's protocol page publishes and an independent CRC; byte stuffing
on the wire; the emulator's fast-read reply against the page's example byte for byte."""

from __future__ import annotations

import select
import time

import pytest
from dynamixel_sdk import COMM_SUCCESS, PortHandler
from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler

from firmware_bridge import protocol as P
from firmware_bridge.protocol import PacketReader, StuffingPacketHandler, encode, encode_status, stuff, unstuff


def bitwise_crc16(data: bytes) -> int:
    """CRC-16/BUYPASS (poly 0x8005, init 0, no reflection) straight from the definition, no table."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Every example packet of the e-manual's "DYNAMIXEL Protocol 2.0" page: ROBOTIS-GIT/emanual,
# docs/en/dxl/protocol2.md, section "Instruction Details" (read from the repository, copied byte for byte).
PAGE = "docs/en/dxl/protocol2.md"
EMANUAL = [
    ("Ping, Example 1", (1, P.PING, b""), "FF FF FD 00 01 03 00 01 19 4E"),
    ("Ping, Example 2 (broadcast)", (0xFE, P.PING, b""), "FF FF FD 00 FE 03 00 01 31 42"),
    ("Read Present Position id 1", (1, P.READ, h("84 00 04 00")), "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15"),
    ("Write Goal Position 512 id 1", (1, P.WRITE, h("74 00 00 02 00 00")),
     "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89"),
    ("Reg Write Goal Velocity 200 id 1", (1, P.REG_WRITE, h("68 00 C8 00 00 00")),
     "FF FF FD 00 01 09 00 04 68 00 C8 00 00 00 AE 8E"),
    ("Action id 1", (1, P.ACTION, b""), "FF FF FD 00 01 03 00 05 02 CE"),
    ("Factory Reset 0x01 id 1", (1, P.FACTORY_RESET, h("01")), "FF FF FD 00 01 04 00 06 01 A1 E6"),
    ("Reboot id 1", (1, P.REBOOT, b""), "FF FF FD 00 01 03 00 08 2F 4E"),
    ("Clear multi-turn id 1", (1, P.CLEAR, h("01 44 58 4C 22")), "FF FF FD 00 01 08 00 10 01 44 58 4C 22 B1 DC"),
    ("Sync Read Present Position ids 1, 2", (0xFE, P.SYNC_READ, h("84 00 04 00 01 02")),
     "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA"),
    ("Sync Write Goal Position 150 / 170", (0xFE, P.SYNC_WRITE, h("74 00 04 00 01 96 00 00 00 02 AA 00 00 00")),
     "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87"),
    ("Fast Sync Read Present Position ids 3, 7, 4", (0xFE, P.FAST_SYNC_READ, h("84 00 04 00 03 07 04")),
     "FF FF FD 00 FE 0A 00 8A 84 00 04 00 03 07 04 20 F2"),
    ("Bulk Read voltage id 1, temperature id 2", (0xFE, P.BULK_READ, h("01 90 00 02 00 02 92 00 01 00")),
     "FF FF FD 00 FE 0D 00 92 01 90 00 02 00 02 92 00 01 00 1A 05"),
    ("Bulk Write Max Voltage 160 id 1, Temperature Limit 80 id 2",
     (0xFE, P.BULK_WRITE, h("01 20 00 02 00 A0 00 02 1F 00 01 00 50")),
     "FF FF FD 00 FE 10 00 93 01 20 00 02 00 A0 00 02 1F 00 01 00 50 B7 68"),
]
# The page's Fast Bulk Read example (position id 3, PWM id 7, temperature id 4) repeats the Fast Sync Read example's
# CRC, 20 F2; everything before it is right, and the CRC of those bytes is DA 2D (checked below).
EMANUAL_FAST_BULK_READ = (0xFE, P.FAST_BULK_READ, h("03 84 00 04 00 07 7C 00 02 00 04 92 00 01 00"))
EMANUAL_FAST_BULK_READ_PUBLISHED = "FF FF FD 00 FE 12 00 9A 03 84 00 04 00 07 7C 00 02 00 04 92 00 01 00 20 F2"
EMANUAL_STATUS = [
    ("Ping reply id 1, model 1030, firmware 38", (1, 0, h("06 04 26")), "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D"),
    ("Ping reply id 2", (2, 0, h("06 04 26")), "FF FF FD 00 02 07 00 55 00 06 04 26 6F 6D"),
    ("Read reply 166", (1, 0, h("A6 00 00 00")), "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0"),
    ("Sync Read reply id 2, 2079", (2, 0, h("1F 08 00 00")), "FF FF FD 00 02 08 00 55 00 1F 08 00 00 BA BE"),
    ("Write / Reg Write / Action / Reboot / Clear reply", (1, 0, b""), "FF FF FD 00 01 04 00 55 00 A1 0C"),
    ("Bulk Read reply id 1, voltage 119", (1, 0, h("77 00")), "FF FF FD 00 01 06 00 55 00 77 00 C3 69"),
    ("Bulk Read reply id 2, temperature 36", (2, 0, h("24")), "FF FF FD 00 02 05 00 55 00 24 8B A9"),
]
# The Fast Sync Read example's single status packet (ids 3, 7, 4 at 166, 2,079, 1,023): each servo's part ends with
# the CRC of everything before it, the last one being the packet's own CRC.
EMANUAL_FAST_SYNC_READ_STATUS = ("FF FF FD 00 FE 19 00 55 00 03 A6 00 00 00 84 08 00 07 1F 08 00 00 16 CA "
                                 "00 04 FF 03 00 00 D1 9E")
EMANUAL_FAST_BULK_READ_STATUS = "FF FF FD 00 FE 14 00 55 00 03 A6 00 00 00 67 A4 00 07 A5 01 24 74 00 04 1F D9 C1"


@pytest.mark.parametrize("published", [e[2] for e in EMANUAL + EMANUAL_STATUS]
                         + [EMANUAL_FAST_SYNC_READ_STATUS, EMANUAL_FAST_BULK_READ_STATUS])
def test_published_crc_agrees_with_independent_crc(published: str) -> None:
    packet = h(published)
    assert bitwise_crc16(packet[:-2]) == int.from_bytes(packet[-2:], "little") == P.crc16(packet[:-2])


def test_fast_bulk_read_example_matches_but_for_its_copied_crc() -> None:
    packet, published = encode(*EMANUAL_FAST_BULK_READ), h(EMANUAL_FAST_BULK_READ_PUBLISHED)
    assert packet[:-2] == published[:-2]
    assert published[-2:] == h("20 F2") and packet[-2:] == h("DA 2D") == bitwise_crc16(packet[:-2]).to_bytes(2, "little")


@pytest.mark.parametrize("status", [EMANUAL_FAST_SYNC_READ_STATUS, EMANUAL_FAST_BULK_READ_STATUS])
def test_fast_read_status_carries_the_running_crc_after_each_servo(status: str) -> None:
    """Each servo's part of a fast read reply ends with the CRC of everything before it (the e-manual's examples)."""
    packet = h(status)
    ends = [i for i in range(10, len(packet) + 1) if packet[i - 2 : i] == bitwise_crc16(packet[: i - 2]).to_bytes(2, "little")]
    assert len(ends) == 3 and ends[-1] == len(packet)


def test_stuffing_follows_the_documented_rule() -> None:
    # Every FF FF FD in INST..params gains an FD; LEN counts the stuffed bytes; CRC covers the stuffed packet.
    params = h("74 00 FF FF FD FF")
    packet = encode(1, P.WRITE, params)
    body = h("03 74 00 FF FF FD FD FF")
    assert packet[:7] == h("FF FF FD 00 01") + (len(body) + 2).to_bytes(2, "little")
    assert packet[7:-2] == body
    assert int.from_bytes(packet[-2:], "little") == bitwise_crc16(packet[:-2])


@pytest.mark.parametrize("raw", [h("FF FF FD"), h("FF FF FD FD"), h("FF FF FD FF FF FD 00"), h("00 FF FF FF FD FD FD"),
                                 h("FF FF FD FF FD FD"), bytes(range(256))])
def test_unstuff_inverts_stuff(raw: bytes) -> None:
    assert unstuff(stuff(raw)) == raw


def test_sdk_remove_stuffing_is_replaced_by_a_correct_one() -> None:
    status = encode_status(1, 0, h("FF FF FD FF FD FD"))
    fixed = StuffingPacketHandler().removeStuffing(list(status))
    assert bytes(fixed[9:15]) == h("FF FF FD FF FD FD")
    assert fixed[5] | fixed[6] << 8 == 6 + 4


def test_reader_resynchronises_and_flags_bad_crc() -> None:
    good = encode(3, P.PING)
    bad = bytearray(encode(4, P.PING))
    bad[-1] ^= 0xFF
    packets = list(PacketReader().feed(b"\x00\x12" + good + bytes(bad) + good[:5]))
    assert [(p.id, p.crc_ok) for p in packets] == [(3, True), (4, False)]


class _WirePort(PortHandler):
    """A PortHandler whose writes go to a list; enough to see what txPacket puts on the wire."""

    def __init__(self) -> None:
        super().__init__("capture")
        self.sent = b""

    def clearPort(self) -> None:  # noqa: N802
        pass

    def writePort(self, packet: bytes) -> int:  # noqa: N802
        self.sent += bytes(packet)
        return len(packet)


def test_patched_handler_sends_stuffed_packet_where_plain_sdk_does_not() -> None:
    value = -131073  # extended position: little-endian FF FF FD FF
    data = list(value.to_bytes(4, "little", signed=True))
    plain, patched = _WirePort(), _WirePort()
    Protocol2PacketHandler().writeTxOnly(plain, 1, 116, 4, data)
    assert StuffingPacketHandler().writeTxOnly(patched, 1, 116, 4, data) == COMM_SUCCESS
    assert patched.sent == h("FF FF FD 00 01 0A 00 03 74 00 FF FF FD FD FF") + patched.sent[-2:]
    assert bitwise_crc16(patched.sent[:-2]) == int.from_bytes(patched.sent[-2:], "little")
    assert h("FF FF FD FD") not in plain.sent[7:]  # the SDK bug this package works around


def test_emulator_answers_the_fast_sync_read_example_byte_for_byte() -> None:
    """The e-manual's Fast Sync Read example, sent as published to emulated servos 3, 7 and 4 at its positions."""
    from firmware_bridge.emulator import ServoEmulator

    positions = {3: 166, 7: 2079, 4: 1023}
    expected = h(EMANUAL_FAST_SYNC_READ_STATUS)
    with ServoEmulator({i: "xl330-m288" for i in positions}, timing=False) as emulator:
        for servo_id, ticks in positions.items():
            emulator.set_shaft(servo_id, ticks)
        port = PortHandler(emulator.port)
        assert port.openPort()  # 1 Mbps, the servos' rate
        try:
            port.writePort(h(EMANUAL[11][2]))
            reply, deadline = b"", time.monotonic() + 2
            while len(reply) < len(expected) and time.monotonic() < deadline:
                if select.select([port.ser.fileno()], [], [], 0.1)[0]:
                    reply += port.ser.read(port.ser.in_waiting)
        finally:
            port.closePort()
    assert reply == expected
