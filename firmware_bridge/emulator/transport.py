"""`ServoEmulator`: a chain of emulated servos answering on a pty, with the wire's timing and injectable faults.

The emulator opens a pty pair, serves on the master side from a background thread and exposes the slave path as
`.port`, which `DynamixelBus` (or any dynamixel-sdk program) opens like a USB adapter. It keeps its own slave fd
open and reads the host's line settings from it, so a servo hears a packet only when the host talks at the servo's
Baud_Rate. Wire time follows that rate and Return Delay Time unless `timing=False`; a burst of packets queues on
the modelled wire (an adapter's buffer) and delays the replies behind it.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import pty
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Iterable, Mapping

from firmware_bridge import protocol as P
from firmware_bridge import tables
from firmware_bridge.emulator.arm import default_arm_motors
from firmware_bridge.emulator.faults import Faults, TimedFault
from firmware_bridge.emulator.instructions import InstructionSet, status_packet
from firmware_bridge.emulator.physics import Hand
from firmware_bridge.emulator.servo import EmulatedServo
from firmware_bridge.errors import FirmwareBridgeError, RequestError

_TERMIOS_SPEEDS = {getattr(termios, f"B{bps}"): bps for bps in (
    9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 500_000, 576_000, 921_600, 1_000_000, 1_152_000,
    1_500_000, 2_000_000, 2_500_000, 3_000_000, 3_500_000, 4_000_000) if hasattr(termios, f"B{bps}")}
_BOTHER = 0o010000  # Linux: a rate outside the table, set through termios2
_TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2) (asm-generic)


def line_rate(fd: int) -> int | None:
    """The bit rate the tty's settings name (the host's, through our end of the pty), None if unreadable."""
    try:
        speed = termios.tcgetattr(fd)[5]
        if speed in _TERMIOS_SPEEDS:
            return _TERMIOS_SPEEDS[speed]
        if speed == _BOTHER:
            raw = fcntl.ioctl(fd, _TCGETS2, bytes(44))
            return struct.unpack("<4IB19sII", raw)[-1]
    except OSError:
        pass
    return None


class ServoEmulator(InstructionSet):
    """Servos answering on a pty. `servos` maps id -> model name; use as a context manager or start()/stop().

    hand: a `Hand` moves every torque-off joint (None: joints stay where they are); faults: `TimedFault`s or their
    `ID:KIND@START[+DURATION]` text, timed from the first bytes a host sends (its first connection), so a fault
    lands the same seconds into a run however long the emulator waited for it.
    """

    def __init__(self, servos: Mapping[int, str], baudrate: int = 1_000_000, *, timing: bool = True,
                 firmware: int = 52, hand: Hand | None = None, faults: Iterable[TimedFault | str] = ()) -> None:
        if baudrate not in tables.BAUD_CODES:
            raise RequestError(f"baudrate {baudrate} is not an X-series rate; use one of {sorted(tables.BAUD_CODES)}")
        now = time.monotonic()
        self.baudrate = baudrate
        self.timing = timing
        self.servos = {i: EmulatedServo(i, tables.model(m), baudrate, firmware, 2048.0 + 16 * i, now)
                       for i, m in sorted(servos.items())}
        for servo in self.servos.values():
            if tables.BAUD_CODES[baudrate] > servo.regs["Baud_Rate"].hi:
                raise RequestError(f"servo {servo.get('ID')} ({servo.model.name}) cannot run at {baudrate} bps")
        self.timed_faults = [f if isinstance(f, TimedFault) else TimedFault.parse(f) for f in faults]
        for fault in self.timed_faults:
            if fault.servo_id not in self.servos:
                raise RequestError(f"fault on id {fault.servo_id}: no such servo (ids {sorted(self.servos)})")
        self._fault_on = [False] * len(self.timed_faults)
        self._reset_done: set[int] = set()  # `reset` faults whose servo has powered up again
        self._lock = threading.RLock()
        self.set_hand(hand)
        self.port = ""
        self.instructions = 0  # valid instruction packets received
        self._stop = threading.Event()
        self._serving = threading.Event()  # set once the serving thread is in its loop
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self.started_at = now  # time.monotonic() of the host's first bytes (until then, of start()): faults count from here
        self._connected = False
        self._now = now
        self._rate = baudrate  # the host's line rate at the packet being handled
        self._listening: list[EmulatedServo] = []
        self._bus_free = 0.0
        self._late: list[tuple[float, bytes]] = []  # delayed replies: (due time, bytes), a heap

    @classmethod
    def arm(cls, model: str = "xl430-w250", **kwargs: object) -> ServoEmulator:
        """The default 6-servo arm, ids 1..6 (see `default_arm_motors`)."""
        return cls(dict(default_arm_motors(model).values()), **kwargs)

    @classmethod
    def factory_fresh(cls, models: list[str], **kwargs: object) -> ServoEmulator:
        """Servos as they leave the factory, every one at ID 1 and 57600 bps (what `edge setup-motors` meets).

        `servos` is keyed by slot 1..n, not by ID: `vanish(slot)` unplugs one, so a test can connect one at a time;
        two present at once collide on ID 1 (their replies garble each other, as on a real half-duplex line).
        """
        emulator = cls(dict(enumerate(models, start=1)), baudrate=tables.FACTORY_BAUDRATE, **kwargs)
        for servo in emulator.servos.values():
            servo.put("ID", tables.FACTORY_ID)
        return emulator

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty and serve from a background thread; returns the port path once the thread serves it."""
        if self._thread is not None:
            raise FirmwareBridgeError("emulator already running")
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._serving.clear()
        self.started_at = time.monotonic()
        self._connected = False
        self._thread = threading.Thread(target=self._serve, name="servo-emulator", daemon=True)
        self._thread.start()
        self._serving.wait()
        return self.port

    def stop(self) -> None:
        """Stop serving and close the pty."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> ServoEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- the world around the servos: hand, faults, inspection ------------------------------------------------

    def set_hand(self, hand: Hand | None) -> None:
        """A person's hand on every torque-off joint (None takes it away); each joint is swept around where it is."""
        now = time.monotonic()
        with self._lock:
            for servo in self.servos.values():
                servo.update(now)
                servo.hand = hand
                servo.hand_centre, servo.hand_since = servo.motor.shaft, now

    def set_shaft(self, servo_id: int, ticks: float) -> None:
        """Turn a joint by hand to `ticks` (encoder ticks before Drive_Mode and Homing_Offset)."""
        with self._lock:
            self.servos[servo_id].set_shaft(ticks, time.monotonic())

    def drop_replies(self, servo_id: int, count: int = 1) -> None:
        """The next `count` replies of `servo_id` are lost (-1: until `clear_faults`)."""
        with self._lock:
            self.servos[servo_id].faults.drop = count

    def corrupt_replies(self, servo_id: int, count: int = 1) -> None:
        """The next `count` replies of `servo_id` carry a wrong CRC."""
        with self._lock:
            self.servos[servo_id].faults.corrupt = count

    def delay_replies(self, servo_id: int, delay_s: float, count: int = 1) -> None:
        """The next `count` replies of `servo_id` come `delay_s` late (other traffic is not held up)."""
        with self._lock:
            faults = self.servos[servo_id].faults
            faults.delay_s, faults.delay_count = delay_s, count

    def hardware_error(self, servo_id: int, bits: int) -> None:
        """Latch a hardware error directly (e.g. `tables.HW_OVERLOAD`); shutdown bits turn torque off until REBOOT."""
        with self._lock:
            self.servos[servo_id].hardware_error(bits)

    def overload(self, servo_id: int, on: bool = True) -> None:
        """A load beyond the stall torque on the joint: with torque on the output saturates, and after a second
        the servo latches Overload (and shuts down, by the factory Shutdown); with torque off it rests."""
        with self._lock:
            self.servos[servo_id].update(time.monotonic())
            self.servos[servo_id].motor.external_load = on

    def overheat(self, servo_id: int, on: bool = True) -> None:
        """Hold the winding at Temperature_Limit (the servo latches Overheating); off lets it cool."""
        with self._lock:
            self.servos[servo_id].overheat = on
            self.servos[servo_id].update(time.monotonic())

    def vanish(self, servo_id: int) -> None:
        """The servo stops hearing and answering (cable pulled)."""
        with self._lock:
            self.servos[servo_id].faults.present = False

    def power_off(self, servo_id: int) -> None:
        """The servo loses power: it goes limp and silent until `reappear(servo_id, power_cycled=True)`."""
        with self._lock:
            servo, now = self.servos[servo_id], time.monotonic()
            servo.update(now)
            servo.power_off(now)
            servo.faults.present = False

    def reappear(self, servo_id: int, power_cycled: bool = False) -> None:
        """The servo is back; after a power cycle its RAM is reset (torque off)."""
        with self._lock:
            servo, now = self.servos[servo_id], time.monotonic()
            servo.faults.present = True
            servo.last_instruction = now
            if power_cycled:
                servo.reset_ram(now)

    def clear_faults(self, servo_id: int | None = None) -> None:
        """Remove pending reply faults (not latched hardware errors) of one or all servos."""
        with self._lock:
            for i in [servo_id] if servo_id is not None else list(self.servos):
                self.reappear(i)
                self.servos[i].faults = Faults()

    def set_register(self, servo_id: int, name: str, value: int) -> None:
        """Write a register as the host would (same checks, same effects) without the bus; a refusal raises
        RequestError with the status error (e.g. "access error" while torque is on)."""
        with self._lock:
            servo, now = self.servos[servo_id], time.monotonic()
            servo.update(now)
            reg = servo.regs[name]
            lo, hi = -(1 << (8 * reg.size - 1)) if reg.signed else 0, (1 << (8 * reg.size)) - 1
            if not lo <= value <= hi:
                raise RequestError(f"{name}: {value} does not fit in {reg.size} byte(s)")
            error = servo.write(reg.address, reg.encode(value), now)
            servo.commit()
            if error & tables.ERR_CODE:
                raise RequestError(f"servo {servo_id} {name}={value}: {tables.describe_status_error(error)}")

    def register(self, servo_id: int, name: str) -> int:
        """Peek at a register value (after advancing the physics), without using the bus."""
        with self._lock:
            servo = self.servos[servo_id]
            servo.update(time.monotonic())
            servo.refresh()
            return servo.get(name)

    def _run_schedule(self, now: float) -> None:
        """Switch timed faults on and off as their windows open and close."""
        elapsed = now - self.started_at
        for index, fault in enumerate(self.timed_faults):
            if fault.kind == "reset":  # once, even if the serve loop woke only after the whole window
                if elapsed >= fault.start_s and index not in self._reset_done:
                    if not self._fault_on[index]:
                        self._fault_on[index] = True
                        self.power_off(fault.servo_id)
                    if not fault.active(elapsed):
                        self._reset_done.add(index)
                        self.reappear(fault.servo_id, power_cycled=True)
                continue
            active = fault.active(elapsed)
            if active == self._fault_on[index]:
                continue
            self._fault_on[index] = active
            faults = self.servos[fault.servo_id].faults
            if fault.kind == "drop_reply":
                faults.drop = -1 if active else 0
            elif fault.kind == "corrupt_crc":
                faults.corrupt = -1 if active else 0
            elif fault.kind == "delay":
                faults.delay_s, faults.delay_count = fault.delay_ms / 1000.0, -1 if active else 0
            elif fault.kind == "vanish":
                self.vanish(fault.servo_id) if active else self.reappear(fault.servo_id)
            elif fault.kind == "overload":
                self.overload(fault.servo_id, active)
            else:
                self.overheat(fault.servo_id, active)

    # ---- serving -----------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        reader = P.PacketReader()
        self._serving.set()
        while not self._stop.is_set():
            wait = min([0.002] + [max(0.0, due - time.monotonic()) for due, _ in self._late[:1]])
            ready, _, _ = select.select([self._master], [], [], wait)
            data = os.read(self._master, 4096) if ready else b""
            now = time.monotonic()
            with self._lock:
                if data and not self._connected:  # the first connection: timed faults start counting
                    self._connected, self.started_at = True, now
                if self._connected:
                    self._run_schedule(now)
                if data:  # the physics is integrated lazily: up to the moment someone asks
                    self._rate = line_rate(self._slave) or self.baudrate
                    for servo in self.servos.values():
                        servo.update(now)
                for packet in reader.feed(data):
                    self._handle(packet, time.monotonic())
                while self._late and self._late[0][0] <= time.monotonic():
                    os.write(self._master, heapq.heappop(self._late)[1])

    def _hearing(self, ids: list[int] | None = None) -> list[EmulatedServo]:
        """Servos that heard the current packet; with `ids`, those whose ID register is listed, in listed order."""
        if ids is None:
            return self._listening
        return [s for i in ids for s in self._listening if s.answers_to(i)]

    def _handle(self, packet: P.Packet, arrival: float) -> None:
        self._bus_free = max(arrival, self._bus_free) + self._wire(packet.size)
        self._now = arrival
        self._listening = [s for s in self.servos.values()
                           if s.faults.present and s.speaks_protocol_2 and s.baudrate == self._rate]
        if not packet.crc_ok:
            self._send([(s, status_packet(s, s.status_error(tables.ERR_CRC))) for s in self._hearing([packet.id])], 1)
            return
        self.instructions += 1
        for servo in self._listening:
            servo.heard_instruction(arrival)
        targets = self._listening if packet.id == P.BROADCAST_ID else self._hearing([packet.id])
        self._dispatch(packet, targets)
        for servo in self._listening:
            servo.commit()  # ID / Baud_Rate changes take effect after the status packet

    def _wire(self, n_bytes: int) -> float:
        return n_bytes * 10.0 / self._rate if self.timing else 0.0

    def _send(self, replies: list[tuple[EmulatedServo, bytes]], level: int) -> None:
        """Put status packets on the wire in order, honouring Status Return Level, timing and faults; servos that
        share an ID answer at the same moment and their replies collide."""
        for servo, reply in _collisions(replies):
            if servo.get("Status_Return_Level") < level:
                continue
            dropped, corrupted, delay = servo.faults.consume()
            if dropped:
                continue
            if corrupted:
                reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
            start = self._bus_free + (servo.get("Return_Delay_Time") * 2e-6 if self.timing else 0.0)
            self._bus_free = start + self._wire(len(reply))
            self._write_at(self._bus_free + delay, reply)

    def _write_combined(self, reply: bytes, return_delay_s: float, late_s: float) -> None:
        """A fast read's single reply: after the first servo's Return Delay Time, then the wire time."""
        self._bus_free += (return_delay_s if self.timing else 0.0) + self._wire(len(reply))
        self._write_at(self._bus_free + late_s, reply)

    def _write_at(self, due: float, reply: bytes) -> None:
        """Send `reply` at `due`: now (sleeping out the wire time) or, when delayed, from the serve loop."""
        if due - time.monotonic() > 0.001:
            heapq.heappush(self._late, (due, reply))
            return
        while (left := due - time.monotonic()) > 0:
            time.sleep(left if left > 0.0005 else 0)
        os.write(self._master, reply)


def _collisions(replies: list[tuple[EmulatedServo, bytes]]) -> list[tuple[EmulatedServo, bytes]]:
    """Two servos with one ID both drive the half-duplex line at once: neither frame survives. Modelled as the first
    reply's bytes ANDed with the second's a bit late (the idle line is high), which breaks the header and the CRC."""
    merged: dict[int, tuple[EmulatedServo, bytes]] = {}
    for servo, reply in replies:
        key = servo.get("ID")
        if key in merged:
            first, other = merged[key]
            length = max(len(other), len(reply))
            a, b = other.ljust(length, b"\xff"), reply.ljust(length, b"\xff")
            reply, servo = bytes(x & ((y >> 1) | 0x80) for x, y in zip(a, b)), first
        merged[key] = (servo, reply)
    return list(merged.values())
