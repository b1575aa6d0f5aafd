"""A chain of emulated X-series servos answering Protocol 2.0 on a pty, for tests and bench work.

`ServoEmulator` opens a pty pair, serves on the master side from a background thread and exposes the
slave path as `.port`, which `DynamixelBus` (or any dynamixel-sdk program) opens like a USB adapter.
Each `EmulatedServo` keeps a real control table (EEPROM lock, limits, homing offset, drive mode,
operating modes, Bus Watchdog, hardware-error shutdown) and simple motor dynamics. Wire time is
modelled from the baud rate and Return Delay Time unless `timing=False`. Faults are injected per
servo: `drop_replies`, `corrupt_replies`, `delay_replies`, `hardware_error`, `vanish`/`reappear`.
"""

from __future__ import annotations

import heapq
import math
import os
import pty
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from firmware_bridge import protocol as P
from firmware_bridge import tables
from firmware_bridge.tables import Model

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
VELOCITY_UNIT = 0.229 / 60 * 4096  # ticks/s per Profile_Velocity / Present_Velocity unit (0.229 rpm)
ACCEL_UNIT = 214.577 / 3600 * 4096  # ticks/s^2 per Profile_Acceleration unit (214.577 rev/min^2)
UNLIMITED_ACCEL = 1e6  # ticks/s^2 when Profile_Acceleration is 0
AMBIENT_C = 25.0
WATCHDOG_TRIPPED = 0xFF  # Bus_Watchdog reads -1 (255 unsigned) after it fired
_GOALS = {"Goal_PWM", "Goal_Current", "Goal_Velocity", "Goal_Position"}
POSITION_MODE = 3  # the only mode that uses Min/Max_Position_Limit
MAX_ID = 252


def default_arm_motors(model: str = "xl430-w250") -> dict[str, tuple[int, str]]:
    """The 6-joint arm (ids 1..6, SO-100/Koch joint names) as `DynamixelBus` motors."""
    return {name: (i, model) for i, name in enumerate(ARM_JOINTS, start=1)}


@dataclass
class Faults:
    """Faults pending on one servo; counts are replies affected, -1 means until cleared."""

    drop: int = 0
    corrupt: int = 0
    delay_s: float = 0.0
    delay_count: int = 0
    present: bool = True

    def consume(self) -> tuple[bool, bool, float]:
        """Apply the pending faults to one reply: (dropped, corrupted, extra delay in seconds)."""
        dropped, self.drop = _take(self.drop)
        corrupted, self.corrupt = _take(self.corrupt)
        delayed, self.delay_count = _take(self.delay_count)
        return dropped, corrupted, self.delay_s if delayed else 0.0


def _take(count: int) -> tuple[bool, int]:
    """(fault applies now, remaining count) for a count where -1 means forever."""
    return count != 0, count - 1 if count > 0 else count


class EmulatedServo:
    """One X-series servo: control table, register semantics and motor dynamics."""

    def __init__(self, servo_id: int, model: Model, baudrate: int, firmware: int, position: float) -> None:
        self.model = model
        self.regs = model.registers
        self.table = bytearray(256)
        self.faults = Faults()
        self.writes: deque[tuple[str, int]] = deque(maxlen=100_000)  # accepted host writes, for tests
        self.firmware = firmware
        self.position = position  # encoder ticks, before homing offset / drive mode
        self.velocity = 0.0  # encoder ticks/s
        self.temperature = AMBIENT_C
        self.current = 0.0
        self.last_update = time.monotonic()
        self.last_instruction = self.last_update
        self._factory_eeprom(servo_id, tables.BAUD_CODES[baudrate])
        self.reset_ram()

    # ---- control table -------------------------------------------------------------------------

    def get(self, name: str) -> int:
        """Current value of register `name`."""
        reg = self.regs[name]
        return reg.decode(self.table[reg.address : reg.address + reg.size])

    def put(self, name: str, value: int) -> None:
        """Store `value` without any checks (the servo's own bookkeeping)."""
        reg = self.regs[name]
        lo, hi = -(1 << (8 * reg.size - 1)) if reg.signed else 0, (1 << (8 * reg.size)) - 1
        self.table[reg.address : reg.address + reg.size] = reg.encode(max(lo, min(int(value), hi)))

    def _factory_eeprom(self, servo_id: int, baud_code: int) -> None:
        low_voltage = self.model.input_voltage < 100
        for name, value in {
            "Model_Number": self.model.number, "Firmware_Version": self.firmware, "ID": servo_id,
            "Baud_Rate": baud_code, "Return_Delay_Time": 250, "Drive_Mode": 0, "Operating_Mode": 3,
            "Protocol_Type": 2, "Homing_Offset": 0, "Moving_Threshold": 10, "Temperature_Limit": 72,
            "Max_Voltage_Limit": 70 if low_voltage else 140, "Min_Voltage_Limit": 35 if low_voltage else 60,
            "PWM_Limit": 885, "Current_Limit": 1750, "Velocity_Limit": 445, "Max_Position_Limit": 4095,
            "Min_Position_Limit": 0, "Shutdown": tables.HW_OVERHEATING | tables.HW_ELECTRICAL_SHOCK | tables.HW_OVERLOAD,
        }.items():
            if name in self.regs:
                self.put(name, value)

    def reset_ram(self) -> None:
        """Power-on RAM: torque off, errors cleared, goal = present position."""
        eeprom_end = self.regs["Torque_Enable"].address
        self.table[eeprom_end:] = bytes(len(self.table) - eeprom_end)
        for name, value in {"Status_Return_Level": 2, "Velocity_I_Gain": 1920, "Velocity_P_Gain": 100,
                            "Position_P_Gain": 800, "Goal_PWM": 885, "Goal_Current": 1750}.items():
            if name in self.regs:
                self.put(name, value)
        self.velocity = 0.0
        self._refresh_present()
        self.put("Goal_Position", self.get("Present_Position"))

    def factory_reset(self, option: int) -> None:
        """FACTORY_RESET: 0xFF everything, 0x01 all but ID, 0x02 all but ID and baud rate."""
        servo_id = self.get("ID") if option in (0x01, 0x02) else 1
        baud = self.get("Baud_Rate") if option == 0x02 else tables.BAUD_CODES[57_600]
        self._factory_eeprom(servo_id, baud)
        self.reset_ram()

    @property
    def torque(self) -> bool:
        """Torque_Enable is set."""
        return self.get("Torque_Enable") == 1

    @property
    def secondary_id(self) -> int | None:
        """The Secondary (shadow) ID when active (0..252; 253..255 switch it off)."""
        value = self.get("Secondary_ID")
        return value if value <= MAX_ID else None

    def answers_to(self, packet_id: int) -> bool:
        """The packet is for this servo's own ID (which takes priority over its Secondary ID)."""
        return self.get("ID") == packet_id

    def shadows(self, packet_id: int) -> bool:
        """The packet reaches this servo through its Secondary ID only: it acts but never replies."""
        return self.secondary_id == packet_id and not self.answers_to(packet_id)

    @property
    def direction(self) -> int:
        """-1 when Drive_Mode selects reverse rotation."""
        return -1 if self.get("Drive_Mode") & 1 else 1

    def status_error(self, error: int = 0) -> int:
        """The ERR byte: `error` plus the alert bit while a hardware error is latched."""
        return error | (tables.ERR_ALERT if self.get("Hardware_Error_Status") else 0)

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """READ semantics: (ERR, data)."""
        if length < 1 or address + length > len(self.table):
            return self.status_error(tables.ERR_DATA_LENGTH), b""
        return self.status_error(), bytes(self.table[address : address + length])

    def write(self, address: int, data: bytes, via_secondary: bool = False) -> int:
        """WRITE semantics, all-or-nothing; returns the ERR byte.

        Through the Secondary ID the EEPROM cannot be modified (e-manual, Secondary(Shadow) ID(12)).
        """
        end = address + len(data)
        covered = [r for r in self.regs.values() if r.address < end and address < r.address + r.size]
        if not data or sum(r.size for r in covered) != len(data) or covered[0].address != address:
            return self.status_error(tables.ERR_DATA_LENGTH if covered else tables.ERR_ACCESS)
        values = {}
        for reg in covered:
            if not reg.writable or (reg.eeprom and (self.torque or via_secondary)):
                return self.status_error(tables.ERR_ACCESS)
            value = reg.decode(data[reg.address - address :])
            error = self._check_value(reg.name, value)
            if error:
                return self.status_error(error)
            values[reg.name] = value
        for name, value in values.items():
            self._apply(name, value)
        return self.status_error()

    def _check_value(self, name: str, value: int) -> int:
        reg = self.regs[name]
        if not reg.lo <= value <= reg.hi:
            return tables.ERR_DATA_RANGE
        if name == "Operating_Mode" and value not in self.model.operating_modes:
            return tables.ERR_DATA_RANGE
        if name in _GOALS and self.get("Bus_Watchdog") == WATCHDOG_TRIPPED:
            return tables.ERR_DATA_RANGE
        if name == "Goal_Position" and self.get("Operating_Mode") == POSITION_MODE:  # e-manual: not in 4 or 5
            if not self.get("Min_Position_Limit") <= value <= self.get("Max_Position_Limit"):
                return tables.ERR_DATA_LIMIT
        if name == "Goal_Velocity" and abs(value) > self.get("Velocity_Limit"):
            return tables.ERR_DATA_LIMIT
        return 0

    def _apply(self, name: str, value: int) -> None:
        if name == "Torque_Enable" and value and self.get("Hardware_Error_Status"):
            return  # a shutdown keeps torque off until REBOOT
        self.writes.append((name, value))
        self.put(name, value)

    def hardware_error(self, bits: int) -> None:
        """Latch Hardware Error Status bits; the ones selected by Shutdown turn torque off."""
        self.put("Hardware_Error_Status", self.get("Hardware_Error_Status") | bits)
        if bits & self.get("Shutdown"):
            self.put("Torque_Enable", 0)

    # ---- dynamics ----------------------------------------------------------------------------

    def heard_instruction(self, now: float) -> None:
        """An instruction packet went by on the bus: feeds the Bus Watchdog."""
        self.last_instruction = now

    def update(self, now: float) -> None:
        """Advance the motor to `now`: profile-limited motion, current, temperature, watchdog."""
        dt, self.last_update = now - self.last_update, now
        watchdog = self.get("Bus_Watchdog")
        if self.torque and 0 < watchdog <= 127 and now - self.last_instruction > watchdog * 0.020:
            self.put("Bus_Watchdog", WATCHDOG_TRIPPED)
            self.put("Goal_Position", self.get("Present_Position"))
            self.put("Goal_Velocity", 0)
        steps = max(1, math.ceil(dt / 0.005))
        for _ in range(steps):
            self._integrate(dt / steps)
        self._refresh_present()

    def _target_velocity(self) -> tuple[float, float]:
        """(desired velocity, acceleration limit) in encoder ticks/s and ticks/s^2."""
        vmax = (self.get("Profile_Velocity") or self.get("Velocity_Limit")) * VELOCITY_UNIT
        amax = self.get("Profile_Acceleration") * ACCEL_UNIT or UNLIMITED_ACCEL
        mode = self.get("Operating_Mode")
        if mode == 1:
            return self.direction * self.get("Goal_Velocity") * VELOCITY_UNIT, amax
        if mode in (3, 4, 5):
            target = self.direction * (self.get("Goal_Position") - self.get("Homing_Offset"))
            error = target - self.position
            return math.copysign(min(vmax, math.sqrt(2 * amax * abs(error))), error), amax
        return 0.0, amax

    def _integrate(self, dt: float) -> None:
        if not self.torque or dt <= 0:
            self.velocity = 0.0
            self.current = 0.0
        else:
            desired, amax = self._target_velocity()
            dv = max(-amax * dt, min(amax * dt, desired - self.velocity))
            self.velocity += dv
            if self.get("Operating_Mode") in (3, 4, 5):
                target = self.direction * (self.get("Goal_Position") - self.get("Homing_Offset"))
                step = self.velocity * dt
                if abs(target - self.position) <= abs(step) or abs(target - self.position) < 0.5:
                    self.position, self.velocity = float(target), 0.0
                else:
                    self.position += step
            else:
                self.position += self.velocity * dt
            self.current = 0.002 * (dv / dt if dt else 0.0) + 0.05 * self.velocity + 5.0
        self.temperature += dt * (abs(self.current) * 0.0002 - (self.temperature - AMBIENT_C) / 300.0)
        if self.temperature >= self.get("Temperature_Limit"):
            self.hardware_error(tables.HW_OVERHEATING)

    def _refresh_present(self) -> None:
        sign = self.direction
        self.put("Present_Position", round(sign * self.position) + self.get("Homing_Offset"))
        self.put("Present_Velocity", round(sign * self.velocity / VELOCITY_UNIT))
        self.put("Present_Current" if "Present_Current" in self.regs else "Present_Load", round(sign * self.current))
        self.put("Present_Temperature", round(self.temperature))
        self.put("Present_Input_Voltage", self.model.input_voltage)
        self.put("Moving", abs(self.velocity) > self.get("Moving_Threshold") * VELOCITY_UNIT)


class ServoEmulator:
    """Servos answering on a pty. `servos` maps id -> model name; use as a context manager or start()/stop()."""

    def __init__(self, servos: Mapping[int, str], baudrate: int = 1_000_000, *, timing: bool = True,
                 firmware: int = 52) -> None:
        if baudrate not in tables.BAUD_CODES:
            raise ValueError(f"baudrate {baudrate} is not an X-series rate; use one of {sorted(tables.BAUD_CODES)}")
        self.baudrate = baudrate
        self.timing = timing
        self.servos = {
            i: EmulatedServo(i, tables.model(m), baudrate, firmware, 2048.0 + 16 * i) for i, m in sorted(servos.items())
        }
        self.port = ""
        self.instructions = 0  # valid instruction packets received
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._bus_free = 0.0
        self._late: list[tuple[float, bytes]] = []  # delayed replies: (due time, bytes), a heap

    @classmethod
    def arm(cls, model: str = "xl430-w250", **kwargs: object) -> ServoEmulator:
        """The default 6-servo arm, ids 1..6 (see `default_arm_motors`)."""
        return cls({i: model for i, _ in default_arm_motors(model).values()}, **kwargs)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty and serve from a background thread; returns the port path."""
        if self._thread is not None:
            raise RuntimeError("emulator already running")
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="servo-emulator", daemon=True)
        self._thread.start()
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

    # ---- fault injection ------------------------------------------------------------------------

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
        """Raise a hardware error (e.g. `tables.HW_OVERLOAD`); a shutdown bit turns torque off until REBOOT."""
        with self._lock:
            self.servos[servo_id].hardware_error(bits)

    def vanish(self, servo_id: int) -> None:
        """The servo stops hearing and answering (cable pulled)."""
        with self._lock:
            self.servos[servo_id].faults.present = False

    def reappear(self, servo_id: int, power_cycled: bool = False) -> None:
        """The servo is back; after a power cycle its RAM is reset (torque off)."""
        with self._lock:
            servo = self.servos[servo_id]
            servo.faults.present = True
            servo.last_instruction = time.monotonic()
            if power_cycled:
                servo.reset_ram()

    def clear_faults(self, servo_id: int | None = None) -> None:
        """Remove pending reply faults (not latched hardware errors) of one or all servos."""
        with self._lock:
            for i in [servo_id] if servo_id is not None else list(self.servos):
                self.reappear(i)
                self.servos[i].faults = Faults()

    def register(self, servo_id: int, name: str) -> int:
        """Peek at a register value (after advancing the dynamics), without using the bus."""
        with self._lock:
            servo = self.servos[servo_id]
            servo.update(time.monotonic())
            return servo.get(name)

    # ---- serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        reader = P.PacketReader()
        while not self._stop.is_set():
            wait = min([0.002] + [max(0.0, due - time.monotonic()) for due, _ in self._late[:1]])
            ready, _, _ = select.select([self._master], [], [], wait)
            data = os.read(self._master, 4096) if ready else b""
            now = time.monotonic()
            with self._lock:
                for servo in self.servos.values():
                    servo.update(now)
                for packet in reader.feed(data):
                    self._handle(packet, time.monotonic())
                while self._late and self._late[0][0] <= time.monotonic():
                    os.write(self._master, heapq.heappop(self._late)[1])

    def _present(self, ids: list[int] | None = None) -> list[EmulatedServo]:
        """Servos on the bus; with `ids`, those whose ID register is listed, in the listed order."""
        present = [s for s in self.servos.values() if s.faults.present]
        if ids is None:
            return present
        return [s for i in ids for s in present if s.answers_to(i)]

    def _shadows(self, packet_id: int) -> list[EmulatedServo]:
        """Servos that execute a packet for `packet_id` through their Secondary ID (and stay silent)."""
        return [s for s in self._present() if s.shadows(packet_id)]

    def _block_for(self, servo: EmulatedServo, blocks: dict[int, bytes]) -> bytes | None:
        """A servo's data in a SYNC/BULK WRITE: its own ID's block, else its Secondary ID's."""
        own = blocks.get(servo.get("ID"))
        return own if own is not None or servo.secondary_id is None else blocks.get(servo.secondary_id)

    def _handle(self, packet: P.Packet, arrival: float) -> None:
        wire_end = max(arrival, self._bus_free) + self._wire(packet.size)
        self._bus_free = wire_end
        if not packet.crc_ok:
            for servo in self._present([packet.id]):
                self._send([(servo, P.encode_status(packet.id, servo.status_error(tables.ERR_CRC)))], 1)
            return
        self.instructions += 1
        targets = self._present() if packet.id == P.BROADCAST_ID else self._present([packet.id])
        for servo in self._present():
            servo.heard_instruction(arrival)
        handler = _HANDLERS.get(packet.instruction, ServoEmulator._unknown)
        try:
            handler(self, packet, targets)
        except (IndexError, ValueError):  # parameters too short for the instruction
            if packet.id != P.BROADCAST_ID:
                self._send([(s, P.encode_status(s.get("ID"), s.status_error(tables.ERR_DATA_LENGTH)))
                            for s in targets], 0)

    def _wire(self, n_bytes: int) -> float:
        return n_bytes * 10.0 / self.baudrate if self.timing else 0.0

    def _send(self, replies: list[tuple[EmulatedServo, bytes]], level: int) -> None:
        """Put status packets on the wire in order, honouring Status Return Level, timing and faults."""
        for servo, reply in replies:
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

    def _write_at(self, due: float, reply: bytes) -> None:
        """Send `reply` at `due`: now (sleeping out the wire time) or, when delayed, from the serve loop."""
        if due - time.monotonic() > 0.001:
            heapq.heappush(self._late, (due, reply))
            return
        self._sleep_until(due)
        os.write(self._master, reply)

    def _sleep_until(self, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(left if left > 0.0005 else 0)

    # ---- instructions ----------------------------------------------------------------------------

    def _ping(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        self._send([(s, P.encode_status(s.get("ID"), s.status_error(),
                                        s.get("Model_Number").to_bytes(2, "little") + bytes([s.firmware])))
                    for s in targets], 0)

    def _read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        if packet.id == P.BROADCAST_ID:
            return
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        self._send([(s, P.encode_status(s.get("ID"), *s.read(address, length))) for s in targets], 1)

    def _write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address = _u16(packet.params, 0)
        replies = [(s, P.encode_status(s.get("ID"), s.write(address, packet.params[2:]))) for s in targets]
        if packet.id != P.BROADCAST_ID:
            for shadow in self._shadows(packet.id):
                shadow.write(address, packet.params[2:], via_secondary=True)
            self._send(replies, 2)

    def _reboot(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        if packet.id != P.BROADCAST_ID:
            self._send([(s, P.encode_status(s.get("ID"), s.status_error())) for s in targets], 2)
            targets = targets + self._shadows(packet.id)
        for servo in targets:
            servo.reset_ram()  # clears Hardware_Error_Status too

    def _factory_reset(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        if packet.id != P.BROADCAST_ID:
            self._send([(s, P.encode_status(s.get("ID"), s.status_error())) for s in targets], 2)
        for servo in targets:
            servo.factory_reset(packet.params[0] if packet.params else 0xFF)

    def _sync_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        chain = self._present(list(packet.params[4:]))
        self._send([(s, P.encode_status(s.get("ID"), *s.read(address, length))) for s in chain], 1)

    def _fast_sync_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        """One combined reply from 0xFE: per servo ERR, ID, data, CRC of everything so far (unstuffed)."""
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        ids = list(packet.params[4:])
        size = 1 + len(ids) * (length + 4)
        reply = bytearray(P.HEADER + bytes([P.BROADCAST_ID, size & 0xFF, size >> 8, P.INST_STATUS]))
        delay = 0.0
        corrupt = False
        for servo_id in ids:
            servo = next(iter(self._present([servo_id])), None)
            if servo is None:
                break
            dropped, corrupted, late = servo.faults.consume()
            if dropped:
                break
            corrupt |= corrupted
            delay += late
            error, data = servo.read(address, length)
            reply += bytes([error, servo_id]) + data.ljust(length, b"\0")
            reply += P.crc16(reply).to_bytes(2, "little")
        if len(reply) == 8:
            return
        if corrupt:
            reply[-1] ^= 0xFF
        first = self._present([ids[0]])[0]
        self._bus_free += self._wire(len(reply)) + (first.get("Return_Delay_Time") * 2e-6 if self.timing else 0)
        self._write_at(self._bus_free + delay, bytes(reply))

    def _sync_write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        body = packet.params[4:]
        blocks = {body[o]: body[o + 1 : o + 1 + length] for o in range(0, len(body) - length, length + 1)}
        for servo in self._present():
            data = self._block_for(servo, blocks)
            if data is not None:
                servo.write(address, data, via_secondary=servo.get("ID") not in blocks)

    def _bulk_read(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        replies = []
        for offset in range(0, len(packet.params) - 4, 5):
            servo_id, address, length = packet.params[offset], _u16(packet.params, offset + 1), _u16(packet.params, offset + 3)
            for servo in self._present([servo_id]):
                replies.append((servo, P.encode_status(servo_id, *servo.read(address, length))))
        self._send(replies, 1)

    def _bulk_write(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        offset, params, blocks = 0, packet.params, {}
        while offset + 5 <= len(params):
            servo_id, length = params[offset], _u16(params, offset + 3)
            blocks[servo_id] = params[offset + 1 : offset + 3] + params[offset + 5 : offset + 5 + length]
            offset += 5 + length
        for servo in self._present():
            block = self._block_for(servo, blocks)
            if block is not None:
                servo.write(_u16(block, 0), block[2:], via_secondary=servo.get("ID") not in blocks)

    def _unknown(self, packet: P.Packet, targets: list[EmulatedServo]) -> None:
        if packet.id != P.BROADCAST_ID:
            self._send([(s, P.encode_status(s.get("ID"), s.status_error(tables.ERR_INSTRUCTION))) for s in targets], 2)


def _u16(data: bytes, offset: int) -> int:
    return data[offset] | data[offset + 1] << 8


_HANDLERS = {
    P.PING: ServoEmulator._ping, P.READ: ServoEmulator._read, P.WRITE: ServoEmulator._write,
    P.REBOOT: ServoEmulator._reboot, P.FACTORY_RESET: ServoEmulator._factory_reset,
    P.SYNC_READ: ServoEmulator._sync_read, P.FAST_SYNC_READ: ServoEmulator._fast_sync_read,
    P.SYNC_WRITE: ServoEmulator._sync_write, P.BULK_READ: ServoEmulator._bulk_read,
    P.BULK_WRITE: ServoEmulator._bulk_write,
}
