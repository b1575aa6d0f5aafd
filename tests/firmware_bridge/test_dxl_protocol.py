"""Protocol 2.0 codec against the e-manual's published packets and an independent CRC; byte stuffing on the wire."""

from __future__ import annotations

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


# Examples from the ROBOTIS e-manual, "DYNAMIXEL Protocol 2.0" page (instruction and status examples).
EMANUAL = [
    ("ping id 1", (1, P.PING, b""), "FF FF FD 00 01 03 00 01 19 4E"),
    ("read Present_Position id 1", (1, P.READ, h("84 00 04 00")), "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15"),
    ("write Goal_Position 512 id 1", (1, P.WRITE, h("74 00 00 02 00 00")),
     "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89"),
    ("sync read Present_Position ids 1,2", (0xFE, P.SYNC_READ, h("84 00 04 00 01 02")),
     "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA"),
    ("sync write Goal_Position 150/170", (0xFE, P.SYNC_WRITE, h("74 00 04 00 01 96 00 00 00 02 AA 00 00 00")),
     "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87"),
    ("reboot id 1", (1, P.REBOOT, b""), "FF FF FD 00 01 03 00 08 2F 4E"),
]
EMANUAL_STATUS = [
    ("ping reply model 1030 fw 38", (1, 0, h("06 04 26")), "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D"),
    ("read reply 166", (1, 0, h("A6 00 00 00")), "FF FF FD 00 01 08 00 55 00 A6 00 00 00 8C C0"),
    ("write reply", (1, 0, b""), "FF FF FD 00 01 04 00 55 00 A1 0C"),
]


@pytest.mark.parametrize("what,args,published", EMANUAL, ids=[e[0] for e in EMANUAL])
def test_instruction_matches_emanual(what: str, args: tuple, published: str) -> None:
    assert encode(*args) == h(published)


@pytest.mark.parametrize("what,args,published", EMANUAL_STATUS, ids=[e[0] for e in EMANUAL_STATUS])
def test_status_matches_emanual(what: str, args: tuple, published: str) -> None:
    assert encode_status(*args) == h(published)


@pytest.mark.parametrize("published", [e[2] for e in EMANUAL + EMANUAL_STATUS])
def test_published_crc_agrees_with_independent_crc(published: str) -> None:
    packet = h(published)
    assert bitwise_crc16(packet[:-2]) == int.from_bytes(packet[-2:], "little") == P.crc16(packet[:-2])


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
