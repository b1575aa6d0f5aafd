"""`DynamixelBus`: a chain of X-series servos on one serial port, Protocol 2.0, over dynamixel-sdk.

The one implementation of firmware_bridge.motors_bus.MotorsBus (the semantic calls the safety layer and the robot
make), over register transactions named as in the e-manual (`Goal_Position`, ...): raw ticks and register units,
signed registers decoded. Every request is validated before anything is sent; transient failures (no reply,
corrupt reply) are retried a bounded number of times, then raised as `BusError` naming the motors and the cause.
"""

from __future__ import annotations

import logging
import math
import operator
import select
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from dynamixel_sdk import COMM_RX_CORRUPT, COMM_RX_TIMEOUT, COMM_SUCCESS

from firmware_bridge import tables
from firmware_bridge.errors import RequestError
from firmware_bridge.motors_bus import WATCHDOG_FIRED, BusError  # BusError: what every bus raises; named here too
from firmware_bridge.protocol import (
    BROADCAST_ID,
    PacketReader,
    PortBusy,
    StuffingPacketHandler,
    TimedPortHandler,
    latency_timer_file,
    usb_latency_timer_ms,
)
from firmware_bridge.tables import Model, Register

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _Transient(Exception):
    """A failure worth retrying (no reply, corrupt reply, port busy)."""

    def __init__(self, motors: Iterable[str], cause: str) -> None:
        super().__init__(cause)
        self.motors = tuple(motors)
        self.cause = cause


@dataclass
class BusStats:
    """Transaction counters: attempts made, retries spent, transactions that failed for good."""

    transactions: int = 0
    retries: int = 0
    failures: int = 0


class DynamixelBus:
    """X-series servos on one port. `motors` maps a name to `(id, model)`, e.g. `{"gripper": (6, "xl330-m288")}`.

    `retries` bounds the extra attempts per transaction; `timeout_slack_ms` is added to every reply
    timeout on top of the wire time and twice the adapter's latency timer.
    """

    def __init__(self, port: str, motors: Mapping[str, tuple[int, str]], baudrate: int = 1_000_000, *,
                 retries: int = 2, timeout_slack_ms: float = 3.0) -> None:
        if baudrate not in tables.BAUD_CODES:
            raise RequestError(f"baudrate {baudrate} is not an X-series rate; use one of {sorted(tables.BAUD_CODES)}")
        if not motors:
            raise RequestError("no motors given")
        self.motors: dict[str, tuple[int, Model]] = {}
        seen: dict[int, str] = {}
        for name, (motor_id, model_name) in motors.items():
            if not 0 <= motor_id <= tables.MAX_ID:
                raise RequestError(f"motor {name!r}: id {motor_id} outside 0..{tables.MAX_ID}")
            if motor_id in seen:
                raise RequestError(f"motors {seen[motor_id]!r} and {name!r} share id {motor_id}")
            seen[motor_id] = name
            self.motors[name] = (motor_id, tables.model(model_name))
        self.port = port
        self.baudrate = baudrate
        self.retries = retries
        self.timeout_slack_ms = timeout_slack_ms
        self.firmware: dict[str, int] = {}
        self.alerts: set[str] = set()  # motors whose last status packet carried the hardware-error alert bit
        self.use_fast_sync_read = False
        self.stats = BusStats()
        self.latency_timer_ms: int | None = None
        # Return Delay Time per motor (us), each reply's wait before it is sent: the e-manual's largest until read
        self.return_delay_us = {name: tables.RETURN_DELAY_MAX_US for name in self.motors}
        self._port: TimedPortHandler | None = None
        self._ph = StuffingPacketHandler()
        self._lock = threading.RLock()

    # ---- connection -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True between a successful `connect()` and `disconnect()`."""
        return self._port is not None

    def connect(self) -> None:
        """Open the port at `baudrate`, ping every motor and check its model; read firmware versions."""
        if self._port is not None:
            raise BusError("connect", [], f"{self.port} is already connected")
        self.latency_timer_ms = usb_latency_timer_ms(self.port)
        if self.latency_timer_ms is not None and self.latency_timer_ms > 1:
            logger.warning(
                "%s: USB latency timer is %d ms, every reply waits that long; fix: "
                "echo 1 | sudo tee %s", self.port, self.latency_timer_ms, latency_timer_file(self.port))
        port = TimedPortHandler(self.port, float(self.latency_timer_ms or 0), self.timeout_slack_ms)
        try:
            if not port.setBaudRate(self.baudrate):
                raise BusError("connect", [], f"cannot set {self.baudrate} bps on {self.port}")
        except PortBusy as exc:
            raise BusError("connect", [], exc.strerror) from None
        except OSError as exc:
            raise BusError("connect", [], f"cannot open {self.port}: {exc}") from exc
        self._port = port
        try:
            self._check_chain()
        except BaseException:
            self._release()
            raise

    def _check_chain(self) -> None:
        missing, wrong = [], []
        for name, (_, expected) in self.motors.items():
            try:
                number = self.ping(name)
            except BusError:
                missing.append(name)
                continue
            if number != expected.number:
                found = tables.MODEL_BY_NUMBER.get(number)
                wrong.append(f"{name} is {found.name if found else 'model number'} ({number}), "
                             f"expected {expected.name} ({expected.number})")
        if missing:
            raise BusError("connect", missing, f"no reply to PING on {self.port} at {self.baudrate} bps")
        if wrong:
            raise BusError("connect", [w.split()[0] for w in wrong], "; ".join(wrong))
        self.firmware = {name: self.read("Firmware_Version", name) for name in self.motors}
        for name in self.motors:
            self.return_delay_us[name] = self.read("Return_Delay_Time", name) * tables.RETURN_DELAY_UNIT_US
        self.use_fast_sync_read = all(v >= self.motors[n][1].fast_read_firmware for n, v in self.firmware.items())

    def disconnect(self, disable_torque: bool = True) -> None:
        """Turn torque off on every motor (best effort; skipped with `disable_torque=False`, as LeRobot's
        `disconnect(disable_torque)`) and release the port; safe to call twice."""
        if self._port is None:
            return
        try:
            if disable_torque:
                self.disable_torque()
        except BusError as exc:
            logger.error("disconnect: could not confirm torque off: %s", exc)
        finally:
            self._release()

    def _release(self) -> None:
        port, self._port = self._port, None
        if port is not None and port.ser is not None:
            port.is_using = False
            port.closePort()

    def __enter__(self) -> DynamixelBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ---- configuration ----------------------------------------------------------------------

    def configure(self, setup: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, int]]:
        """Torque off (EEPROM is only written so), write each motor's setup registers in the given order, read them
        back and compare. `setup` is `{motor: {register: value}}` (default: Return_Delay_Time 0 on every motor),
        each value validated before the first write; nothing else is written, except a Startup_Configuration other
        than 0, which is cleared (`clear_startup_configuration`). Returns what the servos hold, plus Operating_Mode.
        """
        if setup is None:
            setup = {name: {"Return_Delay_Time": 0} for name in self.motors}
        for name, registers in setup.items():
            for register, value in registers.items():
                self._encode(register, name, value)
        self.disable_torque()
        self.clear_startup_configuration()
        for name, registers in setup.items():
            for register, value in registers.items():
                self.write(register, name, value)
        in_force: dict[str, dict[str, int]] = {}
        for name, registers in setup.items():
            in_force[name] = {register: self.read(register, name) for register in registers}
            wrong = {r: (v, in_force[name][r]) for r, v in registers.items() if in_force[name][r] != v}
            if wrong:
                raise BusError("configure", [name], ", ".join(f"{r} reads {got} after writing {want}"
                                                              for r, (want, got) in wrong.items()))
            if "Operating_Mode" not in in_force[name]:
                in_force[name]["Operating_Mode"] = self.read("Operating_Mode", name)
        return in_force

    def clear_startup_configuration(self) -> dict[str, int]:
        """Startup_Configuration(60) to 0 where the firmware has it (X430 v45+, XL330 v46+), torque off: bit 0
        (torque on at power-up) and bit 1 (RAM restored from a backup) would make a servo that reset mid-run look
        as it did before, hiding the reset. Returns {motor: the value found} for the motors it cleared."""
        cleared = {}
        for name, (_, model) in self.motors.items():
            if "Startup_Configuration" not in model.registers or self.firmware.get(name, 0) < model.startup_firmware:
                continue
            found = self.read("Startup_Configuration", name)
            if found:
                self.write("Startup_Configuration", name, 0)
                cleared[name] = found
                logger.warning("%s: Startup_Configuration was %d (%s); cleared, so that a reset servo comes back "
                               "with torque off and is noticed", name, found, tables.describe_startup(found))
        return cleared

    def enable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque on, confirmed by reading Torque_Enable back (a servo in shutdown refuses)."""
        names = self._select(motors)
        self.sync_write("Torque_Enable", {n: 1 for n in names})
        refused = [n for n, on in self.torque_enabled(names).items() if not on]
        if refused:
            errors = {n: tables.describe_hw_error(self.read("Hardware_Error_Status", n)) for n in refused}
            raise BusError("enable torque", refused, f"torque stayed off (hardware error: {errors})")

    def disable_torque(self, motors: Iterable[str] | None = None) -> None:
        """Torque off, confirmed by reading Torque_Enable back."""
        names = self._select(motors)
        self.sync_write("Torque_Enable", {n: 0 for n in names})
        still_on = [n for n, on in self.torque_enabled(names).items() if on]
        if still_on:
            raise BusError("disable torque", still_on, "Torque_Enable still reads 1")

    # ---- the rest of firmware_bridge.motors_bus.MotorsBus: what the safety layer and the robot call ----------

    def read_positions(self, motors: Iterable[str]) -> dict[str, int]:
        """Present_Position (ticks), one sync read."""
        return self.sync_read("Present_Position", motors)

    def write_goals(self, goals: Mapping[str, int]) -> None:
        """Goal_Position (ticks), one broadcast sync write."""
        self.sync_write("Goal_Position", goals)

    def operating_modes(self, motors: Iterable[str]) -> dict[str, str]:
        """Operating_Mode by name (tables.OPERATING_MODES), an unknown value as its number."""
        return {m: tables.MODE_NAMES.get(v, str(v)) for m, v in self.sync_read("Operating_Mode", motors).items()}

    def torque_enabled(self, motors: Iterable[str]) -> dict[str, bool]:
        """Torque_Enable read back, one sync read (converted in place: a read-back every tick adds no dict)."""
        values: dict = self.sync_read("Torque_Enable", motors)
        for m, v in values.items():
            values[m] = v == 1
        return values

    def arm_watchdog(self, motors: Iterable[str], window_ms: float) -> int:
        """Bus_Watchdog 0 (clears a fired one), then the window in 20 ms units, rounded up (bus_watchdog.md)."""
        names, units = list(motors), math.ceil(window_ms / tables.WATCHDOG_UNIT_MS)
        self.sync_write("Bus_Watchdog", {m: 0 for m in names})
        self.sync_write("Bus_Watchdog", {m: units for m in names})
        return units * tables.WATCHDOG_UNIT_MS

    def read_watchdog(self, motors: Iterable[str]) -> dict[str, int]:
        """Bus_Watchdog read back, in ms (WATCHDOG_FIRED where it fired; converted in place like torque_enabled)."""
        values = self.sync_read("Bus_Watchdog", motors)
        for m, v in values.items():
            values[m] = WATCHDOG_FIRED if v == tables.WATCHDOG_FIRED else v * tables.WATCHDOG_UNIT_MS
        return values

    def hardware_error(self, motor: str) -> str | None:
        """Hardware_Error_Status in words, None when no bit is set."""
        bits = self.read("Hardware_Error_Status", motor)
        return tables.describe_hw_error(bits) if bits else None

    # ---- single-motor transactions -----------------------------------------------------------

    def ping(self, motor: str) -> int:
        """The model number `motor` answers with."""
        motor_id, _ = self._motor(motor)
        return self._answered(f"ping {motor}", motor, lambda: self._ph.ping(self._port, motor_id))[0]

    def read(self, register: str, motor: str) -> int:
        """Read one register of one motor (signed registers decoded)."""
        reg = self._register(register, motor)
        motor_id, _ = self.motors[motor]

        def attempt() -> int:
            self._check(self._ph.readTx(self._port, motor_id, reg.address, reg.size), [motor])
            return reg.decode(self._collect(reg, {motor_id: motor})[motor_id])

        return self._transaction(f"read {register}", [motor], attempt)

    def write(self, register: str, motor: str, value: int) -> None:
        """Write one register of one motor and wait for its status (errors raise `BusError`)."""
        reg, data = self._encode(register, motor, value)
        motor_id, _ = self.motors[motor]
        self._answered(f"write {register}={value}", motor,
                       lambda: self._ph.writeTxRx(self._port, motor_id, reg.address, reg.size, list(data)))
        if register == "Return_Delay_Time":
            self.return_delay_us[motor] = value * tables.RETURN_DELAY_UNIT_US

    def reboot(self, motor: str) -> None:
        """REBOOT: clears a hardware-error shutdown; the motor comes back with torque off."""
        motor_id, _ = self._motor(motor)
        self._answered(f"reboot {motor}", motor, lambda: self._ph.reboot(self._port, motor_id))

    def _answered(self, what: str, motor: str, call: Callable[[], tuple]) -> tuple:
        """One instruction that `motor` answers with a status packet; `call()` gives the SDK's (*values, result,
        error), and the values come back."""
        def attempt() -> tuple:
            *values, result, error = call()
            self._check(result, [motor])
            self._status(error, motor)
            return tuple(values)

        return self._transaction(what, [motor], attempt)

    # ---- group transactions --------------------------------------------------------------------

    def sync_read(self, register: str, motors: Iterable[str] | None = None) -> dict[str, int]:
        """Read one register from several motors in one transaction (FAST SYNC READ when supported).

        If a fast read fails, the retry is a plain SYNC READ, whose per-servo replies name the culprit.
        """
        names = self._select(motors)
        reg = self._common_register(register, names)
        ids = {self.motors[n][0]: n for n in names}

        def attempt(n: int) -> dict[str, int]:
            fast = self.use_fast_sync_read and n == 0
            replies = self._fast_sync_read(reg, ids) if fast else self._sync_read(reg, ids)
            return {ids[i]: reg.decode(data) for i, data in replies.items()}

        return self._transaction(f"sync read {register}", names, attempt, pass_attempt=True)

    def _sync_read(self, reg: Register, ids: dict[int, str]) -> dict[int, bytes]:
        result = self._ph.syncReadTx(self._port, reg.address, reg.size, list(ids), len(ids), False)
        self._check(result, ids.values())
        return self._collect(reg, ids)

    def _collect(self, reg: Register, ids: dict[int, str]) -> dict[int, bytes]:
        """Status packets of `ids` carrying `reg`, until all arrived or the reply timeout passed.

        A packet of the wrong length (a late reply to an earlier request) is ignored.
        """
        replies: dict[int, bytes] = {}
        reader = PacketReader()
        corrupt = False
        for packet in self._port.receive(reader):
            if not packet.crc_ok:
                corrupt = True
            elif packet.id in ids and (len(packet.params) == reg.size + 1
                                       or (len(packet.params) == 1 and packet.params[0] & tables.ERR_CODE)):
                self._status(packet.params[0], ids[packet.id])  # raises on an error status (which has no data)
                replies[packet.id] = packet.params[1:]
                if len(replies) == len(ids):
                    break
        missing = [name for i, name in ids.items() if i not in replies]
        if missing:
            raise _Transient(missing, "corrupt reply (CRC)" if corrupt or reader.pending else "no reply")
        return replies

    def _fast_sync_read(self, reg: Register, ids: dict[int, str]) -> dict[int, bytes]:
        """One FAST SYNC READ reply: per servo ERR, ID, data and a CRC, in one unstuffed status packet."""
        result = self._ph.syncReadTx(self._port, reg.address, reg.size, list(ids), len(ids), True)
        self._check(result, ids.values())
        reader = PacketReader(stuffed=False)
        packet = next(self._port.receive(reader), None)
        if packet is None or not packet.crc_ok:
            failure = COMM_RX_CORRUPT if packet or reader.pending else COMM_RX_TIMEOUT
            raise _Transient(ids.values(), self._cause(failure))
        if packet.id != BROADCAST_ID or len(packet.params) != len(ids) * (reg.size + 4) - 2:
            raise _Transient(ids.values(), "fast sync read: unexpected reply")
        replies: dict[int, bytes] = {}
        for idx in range(0, len(packet.params), reg.size + 4):
            error, motor_id = packet.params[idx], packet.params[idx + 1]
            if motor_id not in ids:
                raise _Transient(ids.values(), f"fast sync read: unexpected id {motor_id}")
            self._status(error, ids[motor_id])
            replies[motor_id] = packet.params[idx + 2 : idx + 2 + reg.size]
        return replies

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """Write one register on several motors in one broadcast packet (no replies)."""
        names = list(values)
        reg = self._common_register(register, names)
        param: list[int] = []
        for name, value in values.items():
            param.append(self.motors[name][0])
            param.extend(self._encode(register, name, value)[1])

        def attempt() -> None:
            result = self._ph.syncWriteTxOnly(self._port, reg.address, reg.size, param, len(param))
            self._check(result, names)

        self._transaction(f"sync write {register}", names, attempt)
        if register == "Return_Delay_Time":
            self.return_delay_us.update({n: v * tables.RETURN_DELAY_UNIT_US for n, v in values.items()})

    # ---- validation and plumbing ----------------------------------------------------------------

    def _motor(self, motor: str) -> tuple[int, Model]:
        try:
            return self.motors[motor]
        except (KeyError, TypeError):
            raise RequestError(f"unknown motor {motor!r}; known: {', '.join(self.motors)}") from None

    def _select(self, motors: Iterable[str] | None) -> list[str]:
        names = list(self.motors) if motors is None else list(motors)
        for name in names:
            self._motor(name)
        return names

    def _register(self, register: str, motor: str) -> Register:
        _, model = self._motor(motor)
        try:
            return model.registers[register]
        except (KeyError, TypeError):
            raise RequestError(f"register {register!r} does not exist on {motor!r} ({model.name})") from None

    def _common_register(self, register: str, names: list[str]) -> Register:
        if not names:
            raise RequestError(f"no motors given for {register!r}")
        regs = [self._register(register, n) for n in names]
        if len({r.layout for r in regs}) != 1:
            raise RequestError(f"register {register!r} differs between models of {names}")
        return regs[0]

    def _encode(self, register: str, motor: str, value: int) -> tuple[Register, bytes]:
        reg = self._register(register, motor)
        if not reg.writable:
            raise RequestError(f"register {register!r} is read-only")
        try:
            value = operator.index(value)
        except TypeError:
            raise RequestError(f"{register} for {motor!r}: {value!r} is not an integer") from None
        if not reg.lo <= value <= reg.hi:
            raise RequestError(f"{register} for {motor!r}: {value} outside {reg.lo}..{reg.hi}")
        modes = self.motors[motor][1].operating_modes
        if register == "Operating_Mode" and value not in modes:
            raise RequestError(f"Operating_Mode for {motor!r}: {value} not supported by this model ({modes})")
        return reg, reg.encode(value)

    def _check(self, result: int, motors: Iterable[str]) -> None:
        """Raise `_Transient` when the exchange itself failed (nothing sent, no reply, corrupt reply)."""
        if result != COMM_SUCCESS:
            raise _Transient(motors, self._cause(result))

    def _cause(self, result: int) -> str:
        """The SDK's words for a failed exchange ("There is no status packet!", ...)."""
        return self._ph.getTxRxResult(result).replace("[TxRxResult] ", "")

    def _status(self, error: int, motor: str) -> None:
        """Track the hardware-alert bit of `motor`'s status ERR byte; raise `BusError` on a servo error."""
        if error & tables.ERR_ALERT:
            self.alerts.add(motor)
        else:
            self.alerts.discard(motor)
        if error & tables.ERR_CODE:
            raise BusError("status", [motor], tables.describe_status_error(error))

    def _drain(self) -> None:
        """After a failed attempt, let late replies arrive and discard them so no retry reads them."""
        port = self._port
        quiet_s = (2.0 * port.latency_ms + port.slack_ms) / 1000.0
        deadline = time.monotonic() + 4 * quiet_s
        while select.select([port.ser.fileno()], [], [], quiet_s)[0] and time.monotonic() < deadline:
            port.ser.reset_input_buffer()
        port.ser.reset_input_buffer()

    def _transaction(self, what: str, motors: Iterable[str], fn: Callable[..., T], pass_attempt: bool = False) -> T:
        """Run `fn` with the port lock held, retrying `_Transient` failures up to `retries` times."""
        with self._lock:
            if self._port is None:
                raise BusError(what, motors, "bus is not connected")
            motors = list(motors)
            # the replies come one after the other, each after its servo's Return Delay Time
            self._port.reply_delay_ms = sum(self.return_delay_us.get(m, 0) for m in motors) / 1000.0
            failure: _Transient | None = None
            for attempt in range(self.retries + 1):
                self._port.is_using = False  # an interrupted transaction can leave it stuck
                self.stats.transactions += 1
                self.stats.retries += attempt > 0
                try:
                    return fn(attempt) if pass_attempt else fn()
                except _Transient as exc:
                    failure = exc
                    self._drain()
                except OSError as exc:  # the adapter went away (unplugged, permissions)
                    self.stats.failures += 1
                    raise BusError(what, motors, f"port error on {self.port}: {exc}") from exc
            self.stats.failures += 1
            assert failure is not None
            raise BusError(f"{what} failed after {self.retries + 1} attempts", failure.motors, failure.cause)
