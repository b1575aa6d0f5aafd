"""Protocol 2.0 instructions as the chain executes them (e-manual, docs/en/dxl/protocol2.md, Instruction Details).

`InstructionSet` is the dispatch half of `ServoEmulator`: each handler gets the decoded packet and the servos it is
addressed to (by ID register), and queues status packets through `_send`, which the transport half provides.
Packets addressed to a Secondary ID are executed by the shadow servos without a reply (shadow_id.md).
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_bridge import protocol as P
from firmware_bridge import tables
from firmware_bridge.emulator.servo import EmulatedServo

CLEAR_MULTI_TURN = bytes([0x01, 0x44, 0x58, 0x4C, 0x22])  # CLEAR option 0x01 and its fixed key


class InstructionSet:
    """Instruction handlers; the transport supplies `_hearing`, `_send`, `_write_combined` and `_now`."""

    _hearing: Callable[..., list[EmulatedServo]]
    _send: Callable[[list[tuple[EmulatedServo, bytes]], int], None]
    _write_combined: Callable[[bytes, float, float], None]
    _now: float

    def _shadows(self, packet_id: int) -> list[EmulatedServo]:
        """Servos that execute a packet for `packet_id` through their Secondary ID (and stay silent)."""
        return [] if packet_id == P.BROADCAST_ID else [s for s in self._hearing() if s.shadows(packet_id)]

    def _dispatch(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        handler = _HANDLERS.get(packet.instruction, InstructionSet._unknown)
        try:
            handler(self, packet, targets)
        except (IndexError, ValueError):  # parameters too short for the instruction
            if packet.id != P.BROADCAST_ID:
                self._send([(s, status_packet(s, s.status_error(tables.ERR_DATA_LENGTH))) for s in targets], 0)

    def _reply_unless_broadcast(self, packet: P.Packet, replies: list[tuple[EmulatedServo, bytes]]) -> None:
        """READ/WRITE-type instructions sent to the broadcast ID get no status packet (protocol2.md, Packet ID)."""
        if packet.id != P.BROADCAST_ID:
            self._send(replies, 2)

    def _ping(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        # Always answered, whatever the Status Return Level; to the broadcast ID by every servo in ID order.
        order = sorted(targets, key=lambda s: s.get("ID"))
        self._send([(s, status_packet(s, s.status_error(), s.get("Model_Number").to_bytes(2, "little")
                                + bytes([s.firmware]))) for s in order], 0)

    def _read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        if packet.id == P.BROADCAST_ID:
            return  # "Read Instructions are not executed when sent to the Broadcast ID"
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        self._send([(s, status_packet(s, *s.read(address, length))) for s in targets], 1)

    def _write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, data = _u16(packet.params, 0), packet.params[2:]
        replies = [(s, status_packet(s, s.write(address, data, self._now))) for s in targets]
        for shadow in self._shadows(packet.id):
            shadow.write(address, data, self._now, via_secondary=True)
        self._reply_unless_broadcast(packet, replies)

    def _reg_write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        """REG_WRITE: held until ACTION; Registered_Instruction reads 1 meanwhile."""
        address = _u16(packet.params, 0)
        for servo in targets + self._shadows(packet.id):
            servo.registered = (address, packet.params[2:])
            servo.put("Registered_Instruction", 1)
        self._reply_unless_broadcast(packet, [(s, status_packet(s, s.status_error())) for s in targets])

    def _action(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        replies = []
        for servo in targets + self._shadows(packet.id):
            if servo.registered is None:
                error = servo.status_error(tables.ERR_INSTRUCTION)  # "Action has been used without Reg Write"
            else:
                address, data = servo.registered
                error = servo.write(address, data, self._now, via_secondary=servo.shadows(packet.id))
                servo.registered = None
                servo.put("Registered_Instruction", 0)
            if servo in targets:
                replies.append((servo, status_packet(servo, error)))
        self._reply_unless_broadcast(packet, replies)

    def _reboot(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        self._reply_unless_broadcast(packet, [(s, status_packet(s, s.status_error())) for s in targets])
        for servo in targets + self._shadows(packet.id):
            servo.reset_ram(self._now)  # clears Hardware_Error_Status too

    def _factory_reset(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        option = packet.params[0] if packet.params else 0xFF
        if packet.id == P.BROADCAST_ID and option == 0xFF:
            return  # not executed: broadcast "reset all" (protocol2.md, Factory Reset, FW42+)
        self._reply_unless_broadcast(packet, [(s, status_packet(s, s.status_error())) for s in targets])
        for servo in targets:  # the EEPROM cannot be modified through a Secondary ID
            servo.factory_reset(option, self._now)

    def _clear(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        replies = []
        for servo in targets + self._shadows(packet.id):
            error = servo.clear_multi_turn() if bytes(packet.params[:5]) == CLEAR_MULTI_TURN \
                else servo.status_error(tables.ERR_DATA_RANGE)
            if servo in targets:
                replies.append((servo, status_packet(servo, error)))
        self._reply_unless_broadcast(packet, replies)

    def _sync_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        chain = self._hearing(list(packet.params[4:]))
        self._send([(s, status_packet(s, *s.read(address, length))) for s in chain], 1)

    def _fast_sync_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        self._fast_read([(i, address, length) for i in packet.params[4:]])

    def _fast_bulk_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        params = packet.params
        self._fast_read([(params[o], _u16(params, o + 1), _u16(params, o + 3)) for o in range(0, len(params) - 4, 5)])

    def _fast_read(self, requests: list[tuple[int, int, int]]) -> None:
        """One status packet from 0xFE for all: per servo ERR, ID, data, and the CRC of everything before it
        (protocol2.md, Fast Sync Read example: the CRCs 84 08, 16 CA, D1 9E); not byte-stuffed. A servo that does
        not answer (absent, reply dropped) cuts the packet short there, as a real chain's relay would."""
        size = 1 + sum(length + 4 for _, _, length in requests)
        reply = bytearray(P.HEADER + bytes([P.BROADCAST_ID, size & 0xFF, size >> 8, P.INST_STATUS]))
        delay, corrupt, first = 0.0, False, None
        for servo_id, address, length in requests:
            servo = next(iter(self._hearing([servo_id])), None)
            if servo is None:
                break
            dropped, corrupted, late = servo.faults.consume()
            if dropped:
                break
            first = first or servo
            corrupt |= corrupted
            delay += late
            error, data = servo.read(address, length)
            reply += bytes([error, servo_id]) + data.ljust(length, b"\0")
            reply += P.crc16(reply).to_bytes(2, "little")
        if first is None:
            return
        if corrupt:
            reply[-1] ^= 0xFF
        self._write_combined(bytes(reply), first.get("Return_Delay_Time") * 2e-6, delay)

    def _sync_write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        body = packet.params[4:]
        blocks = {body[o]: body[o + 1 : o + 1 + length] for o in range(0, len(body) - length, length + 1)}
        for servo in self._hearing():
            data = _block_for(servo, blocks)
            if data is not None:
                servo.write(address, data, self._now, via_secondary=servo.get("ID") not in blocks)

    def _bulk_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        replies = []
        for offset in range(0, len(packet.params) - 4, 5):
            servo_id, address, length = packet.params[offset], _u16(packet.params, offset + 1), \
                _u16(packet.params, offset + 3)
            for servo in self._hearing([servo_id]):
                replies.append((servo, status_packet(servo, *servo.read(address, length))))
        self._send(replies, 1)

    def _bulk_write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        offset, params, blocks = 0, packet.params, {}
        while offset + 5 <= len(params):
            servo_id, length = params[offset], _u16(params, offset + 3)
            blocks[servo_id] = params[offset + 1 : offset + 3] + params[offset + 5 : offset + 5 + length]
            offset += 5 + length
        for servo in self._hearing():
            block = _block_for(servo, blocks)
            if block is not None:
                servo.write(_u16(block, 0), block[2:], self._now, via_secondary=servo.get("ID") not in blocks)

    def _unknown(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        self._reply_unless_broadcast(packet, [(s, status_packet(s, s.status_error(tables.ERR_INSTRUCTION))) for s in targets])


def status_packet(servo: EmulatedServo, error: int, params: bytes = b"") -> bytes:
    """A status packet from `servo` (its ID before any pending ID change)."""
    return P.encode_status(servo.get("ID"), error, params)


def _block_for(servo: EmulatedServo, blocks: dict[int, bytes]) -> bytes | None:
    """A servo's data in a SYNC/BULK WRITE: its own ID's block, else its Secondary ID's."""
    own = blocks.get(servo.get("ID"))
    return own if own is not None or servo.secondary_id is None else blocks.get(servo.secondary_id)


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | data[offset + 1] << 8


_HANDLERS = {
    P.PING: InstructionSet._ping, P.READ: InstructionSet._read, P.WRITE: InstructionSet._write,
    P.REG_WRITE: InstructionSet._reg_write, P.ACTION: InstructionSet._action, P.REBOOT: InstructionSet._reboot,
    P.FACTORY_RESET: InstructionSet._factory_reset, P.CLEAR: InstructionSet._clear,
    P.SYNC_READ: InstructionSet._sync_read, P.FAST_SYNC_READ: InstructionSet._fast_sync_read,
    P.SYNC_WRITE: InstructionSet._sync_write, P.BULK_READ: InstructionSet._bulk_read,
    P.BULK_WRITE: InstructionSet._bulk_write, P.FAST_BULK_READ: InstructionSet._fast_bulk_read,
}
