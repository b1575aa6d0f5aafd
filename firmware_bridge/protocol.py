"""Protocol 2.0 framing: byte stuffing, CRC and packet encode/decode, plus the two dynamixel-sdk fixes.

The SDK's `txPacket` computes the stuffed packet and then sends the unstuffed one, and its
`removeStuffing` rewrites the buffer in place while still reading from it. `StuffingPacketHandler`
replaces both; `TimedPortHandler` sizes reply timeouts from the adapter's real latency timer instead
of the SDK's fixed 16 ms and the servos' Return Delay Time, waits in `select` rather than spinning, and is the
port's one owner: it opens with pyserial's exclusive flock and TIOCEXCL, and never reopens on a rate change.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import serial
from dynamixel_sdk import COMM_PORT_BUSY, COMM_SUCCESS, COMM_TX_ERROR, COMM_TX_FAIL, PortHandler
from dynamixel_sdk.protocol2_packet_handler import TXPACKET_MAX_LEN, Protocol2PacketHandler

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
INST_STATUS = 0x55
PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT, CLEAR = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x10
SYNC_READ, SYNC_WRITE, FAST_SYNC_READ, BULK_READ, BULK_WRITE, FAST_BULK_READ = 0x82, 0x83, 0x8A, 0x92, 0x93, 0x9A

_SDK_CRC = Protocol2PacketHandler()


def crc16(data: bytes | bytearray) -> int:
    """CRC-16 (poly 0x8005) of `data`, computed by the SDK's own `updateCRC`."""
    return _SDK_CRC.updateCRC(0, data, len(data))


def stuff(body: bytes) -> bytes:
    """Insert an FD after every FF FF FD in the instruction-to-last-parameter span."""
    out = bytearray()
    for i, b in enumerate(body):
        out.append(b)
        if b == 0xFD and i >= 2 and body[i - 1] == 0xFF and body[i - 2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes | bytearray) -> bytes:
    """Drop the FD that follows every FF FF FD (inverse of `stuff`)."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if (body[i] == 0xFD and i >= 2 and body[i - 1] == 0xFF and body[i - 2] == 0xFF
                and i + 1 < len(body) and body[i + 1] == 0xFD):
            i += 1
        i += 1
    return bytes(out)


def encode(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """A complete, stuffed, CRC-terminated packet (an instruction, or a status when instruction is 0x55)."""
    body = stuff(bytes([instruction]) + bytes(params))
    length = len(body) + 2
    packet = HEADER + bytes([packet_id, length & 0xFF, length >> 8]) + body
    return packet + crc16(packet).to_bytes(2, "little")


def encode_status(packet_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet: INST 0x55, the ERR byte, then the parameters."""
    return encode(packet_id, INST_STATUS, bytes([error]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """One decoded packet; `params` are unstuffed, `crc_ok` tells whether the CRC matched."""

    id: int
    instruction: int
    params: bytes
    crc_ok: bool
    size: int  # bytes on the wire, stuffing included


class PacketReader:
    """Incremental decoder: feed raw bytes, iterate the complete packets found, skip garbage.

    `stuffed=False` reads a FAST SYNC/BULK READ reply, which the servos send without byte stuffing.
    """

    def __init__(self, stuffed: bool = True) -> None:
        self._buf = bytearray()
        self.stuffed = stuffed

    @property
    def pending(self) -> bool:
        """True while the bytes held so far begin a packet that has not fully arrived."""
        return self._buf.startswith(HEADER)

    def feed(self, data: bytes) -> Iterator[Packet]:
        """Append `data` and yield every packet now complete."""
        self._buf += data
        while True:
            start = self._buf.find(HEADER)
            if start < 0:
                del self._buf[: max(0, len(self._buf) - 3)]
                return
            del self._buf[:start]
            if len(self._buf) < 7:
                return
            length = self._buf[5] | self._buf[6] << 8
            if length < 3:
                del self._buf[:1]
                continue
            if len(self._buf) < 7 + length:
                return
            raw = bytes(self._buf[: 7 + length])
            inner = _unstuffed_header(raw) if self.stuffed else 0
            if inner:  # an unstuffed FF FF FD inside the body is a header: resynchronise on it
                del self._buf[:inner]
                continue
            del self._buf[: 7 + length]
            ok = crc16(raw[:-2]) == int.from_bytes(raw[-2:], "little")
            body = unstuff(raw[7:-2]) if self.stuffed else raw[7:-2]
            yield Packet(raw[4], body[0], body[1:], ok, len(raw))


def _unstuffed_header(raw: bytes) -> int:
    """Offset of the first FF FF FD in the body of `raw` that is not followed by a stuffing FD, else 0."""
    at = raw.find(b"\xff\xff\xfd", 7, len(raw) - 2)
    while at >= 0:
        if at + 3 >= len(raw) or raw[at + 3] != 0xFD:
            return at
        at = raw.find(b"\xff\xff\xfd", at + 4, len(raw) - 2)
    return 0


class StuffingPacketHandler(Protocol2PacketHandler):
    """The SDK's Protocol 2.0 handler, except that the byte-stuffed packet is what goes on the wire."""

    def txPacket(self, port: PortHandler, txpacket: list[int]) -> int:  # noqa: N802 (SDK name)
        if port.is_using:
            return COMM_PORT_BUSY
        port.is_using = True
        length = txpacket[5] | txpacket[6] << 8
        packet = encode(txpacket[4], txpacket[7], bytes(txpacket[8 : 7 + length - 2]))
        if len(packet) > TXPACKET_MAX_LEN:
            port.is_using = False
            return COMM_TX_ERROR
        port.clearPort()
        if port.writePort(packet) != len(packet):
            port.is_using = False
            return COMM_TX_FAIL
        return COMM_SUCCESS

    def removeStuffing(self, packet: list[int]) -> list[int]:  # noqa: N802 (SDK name)
        length = packet[5] | packet[6] << 8
        body = unstuff(bytes(packet[7 : 7 + length - 2]))
        new_length = len(body) + 2
        return list(packet[:5]) + [new_length & 0xFF, new_length >> 8] + list(body) + list(packet[5 + length : 7 + length])


class PortBusy(OSError):
    """The serial port is held by another program (or another bus of this one): one owner per port."""


class TimedPortHandler(PortHandler):
    """PortHandler whose reply timeout uses the real latency timer and the servos' Return Delay Time, whose reads
    block in select, and which holds its port exclusively (refusing, with `PortBusy`, a port another holds)."""

    def __init__(self, port_name: str, latency_ms: float, slack_ms: float) -> None:
        super().__init__(port_name)
        self.latency_ms = latency_ms
        self.slack_ms = slack_ms
        self.reply_delay_ms = 0.0  # Return Delay Time of the replies the next request waits for, set by the bus

    def setupPort(self, cflag_baud: int) -> bool:  # noqa: N802 (SDK name)
        """Open the port once, exclusively; a later rate change reconfigures the open port (the SDK's reopens it,
        which would let another program in between)."""
        if self.is_open:
            self.ser.baudrate = self.baudrate
        else:
            try:
                self.ser = serial.Serial(port=self.port_name, baudrate=self.baudrate, bytesize=serial.EIGHTBITS,
                                         timeout=0, exclusive=True)
            except serial.SerialException as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EBUSY):
                    raise PortBusy(exc.errno, held_message(self.port_name)) from None
                raise OSError(exc.errno or errno.EIO, str(exc)) from None
            try:  # every other non-root open now fails with EBUSY (flock only stops other flock users)
                fcntl.ioctl(self.ser.fileno(), termios.TIOCEXCL)
            except OSError:
                pass  # not a tty that supports it
            self.is_open = True
            self.ser.reset_input_buffer()
        self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
        return True

    def closePort(self) -> None:  # noqa: N802 (SDK name)
        """Release the port: exclusivity off first (a tty keeps it while another holds it open, as the emulator
        holds its pty), then close, which also drops the flock."""
        try:
            fcntl.ioctl(self.ser.fileno(), termios.TIOCNXCL)
        except (OSError, ValueError):
            pass
        super().closePort()

    def setPacketTimeout(self, packet_length: int) -> None:  # noqa: N802 (SDK name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = (self.tx_time_per_byte * packet_length + 2.0 * self.latency_ms + self.reply_delay_ms
                               + self.slack_ms)

    def readPort(self, length: int) -> bytes:  # noqa: N802 (SDK name)
        if not self.ser.in_waiting:
            remaining_s = max(0.0, self.packet_timeout - self.getTimeSinceStart()) / 1000.0
            select.select([self.ser.fileno()], [], [], remaining_s)
        return self.ser.read(length)

    def receive(self, reader: PacketReader) -> Iterator[Packet]:
        """Every status packet `reader` decodes from the port until the reply timeout the last request set.

        Like the SDK's `rxPacket`, it frees the port (`is_using`) when done.
        """
        try:
            while True:
                for packet in reader.feed(self.readPort(TXPACKET_MAX_LEN)):
                    if packet.instruction == INST_STATUS:
                        yield packet
                if self.isPacketTimeout():
                    return
        finally:
            self.is_using = False


USB_SERIAL_SYSFS = Path("/sys/bus/usb-serial/devices")


def latency_timer_file(port: str, sysfs: Path = USB_SERIAL_SYSFS) -> Path:
    """Where the USB-serial latency timer of `port` (e.g. /dev/ttyUSB0 or a by-id link) lives."""
    return sysfs / os.path.basename(os.path.realpath(port)) / "latency_timer"


def usb_latency_timer_ms(port: str, sysfs: Path = USB_SERIAL_SYSFS) -> int | None:
    """The adapter's latency timer in ms, or None when the port has none (a pty, a native UART)."""
    try:
        return int(latency_timer_file(port, sysfs).read_text().strip())
    except (OSError, ValueError):
        return None


def port_holders(port: str, proc: Path = Path("/proc")) -> list[int]:
    """Process ids that hold `port`: the owner of a flock on it (/proc/locks), else any other process with it open
    (/proc/<pid>/fd, only the processes this user may inspect)."""
    try:
        st = os.stat(port)
    except OSError:
        return []
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    mine = os.getpid()
    try:
        locks = (proc / "locks").read_text().splitlines()
    except OSError:
        locks = []
    holders = sorted({int(f[4]) for f in (line.split() for line in locks)
                      if len(f) > 5 and f[1] == "FLOCK" and f[5] == inode})
    if holders:
        return holders
    target = os.path.realpath(port)
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == mine:
            continue
        try:
            if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                holders.append(int(entry.name))
        except OSError:
            continue
    return sorted(holders)


def held_message(port: str) -> str:
    """"/dev/ttyUSB0 is in use by pid 4242 (python -m edge run ...)": who holds a port that would not open."""
    described = []
    for pid in port_holders(port):
        if pid == os.getpid():
            described.append(f"this program (pid {pid}: another bus on the same port?)")
            continue
        try:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            command = ""
        described.append(f"pid {pid}" + (f" ({command})" if command else ""))
    who = ", ".join(described) if described else "another program (its pid is not visible here)"
    return f"{port} is in use by {who}; one program at a time may own a servo bus"
