"""Giving one factory-fresh servo its ID and baud rate, the way LeRobot's `setup_motor` does, with the checks it lacks.

LeRobot 0.4.4 (motors_bus.py `setup_motor`, dynamixel.py `_find_single_motor`) broadcast-pings at each baud rate of
the model, takes the first reply, writes ID then Baud_Rate and does not read them back. Here: every rate is pinged
and every reply kept, so two servos (two factory-fresh ones both at ID 1 garble each other's replies, two set-up
ones answer twice) are refused as "more than one motor connected?" before anything is written; the model found is
named and a mismatch refused; ID and baud rate are read back at the new rate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from firmware_bridge import tables
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.errors import FirmwareBridgeError
from firmware_bridge.protocol import BROADCAST_ID, INST_STATUS, PING, PacketReader, TimedPortHandler, encode

# The SDK's broadcastPing waits this long for replies: every servo answers in ID order, about 3 ms apart.
PING_WAIT_MS = 3.0 * (tables.MAX_ID + 1) + 16.0


class MotorSetupError(FirmwareBridgeError):
    """The servo could not be set up; the message says why and what to do. Nothing was written unless it says so."""


@dataclass(frozen=True)
class FoundServo:
    """One servo's reply to a broadcast PING."""

    id: int
    model_number: int
    baudrate: int

    @property
    def model_name(self) -> str:
        """The model's name (`xl330-m288`), or the bare number for a model this table does not know."""
        model = tables.MODEL_BY_NUMBER.get(self.model_number)
        return model.name if model else f"model number {self.model_number}"


def search_rates(model: str, target: int) -> list[int]:
    """The baud rates to ping, factory rate first, then the bus's, then the rest the model supports."""
    top = tables.model(model).registers["Baud_Rate"].hi
    rates = [bps for code, bps in sorted(tables.BAUD_RATES.items()) if code <= top]
    return sorted(rates, key=lambda bps: (bps != tables.FACTORY_BAUDRATE, bps != target, bps))


def broadcast_ping(port: str, baudrate: int, wait_ms: float = PING_WAIT_MS) -> tuple[list[FoundServo], bool] | None:
    """Every valid PING reply on `port` at `baudrate` within `wait_ms`, and whether anything else (garbage, a bad
    CRC) came back; None if the adapter cannot run at that rate."""
    handler = TimedPortHandler(port, 0.0, 0.0)
    try:
        if not handler.setBaudRate(baudrate):
            if handler.ser is not None:
                handler.closePort()
            return None
    except OSError as exc:
        raise MotorSetupError(f"cannot open {port}: {exc}") from exc
    try:
        handler.clearPort()
        request = encode(BROADCAST_ID, PING)
        handler.writePort(request)
        handler.setPacketTimeoutMillis(wait_ms)
        reader, found, received, valid = PacketReader(), [], 0, 0
        while True:
            data = handler.readPort(4096)
            received += len(data)
            for packet in reader.feed(data):
                if packet.crc_ok and len(packet.params) == 4 and packet.instruction == INST_STATUS:
                    found.append(FoundServo(packet.id, packet.params[1] | packet.params[2] << 8, baudrate))
                    valid += packet.size
            if handler.isPacketTimeout():
                break
        return found, received > valid
    finally:
        handler.closePort()


def find_single_servo(port: str, model: str, target_baudrate: int, progress: Callable[[str], None] = lambda _: None,
                      wait_ms: float = PING_WAIT_MS) -> FoundServo:
    """The one servo on `port`: pinged at every rate the model supports; refuses none, several, garbled replies
    (two servos on one ID) and a model other than `model`."""
    replies: list[FoundServo] = []
    garbled: list[int] = []
    rates = search_rates(model, target_baudrate)
    for bps in rates:
        result = broadcast_ping(port, bps, wait_ms)
        progress(f"  pinging at {bps} bps" + (": the adapter cannot run at this rate, skipped" if result is None else ""))
        if result is None:
            continue
        found, noise = result
        replies += found
        if noise:
            garbled.append(bps)
    if garbled or len(replies) > 1:
        seen = ", ".join(f"{r.model_name} id {r.id} at {r.baudrate} bps" for r in replies)
        why = (f"garbled replies at {', '.join(map(str, garbled))} bps (servos sharing an ID answer at once)"
               if garbled else f"{len(replies)} servos answered ({seen})")
        raise MotorSetupError(f"more than one motor connected? {why}; connect only this one motor to the "
                              "controller board and try again (nothing was written)")
    if not replies:
        raise MotorSetupError(f"no servo answered a PING on {port} at any of "
                              f"{', '.join(map(str, rates))} bps; is it connected "
                              "and powered (the adapter's power supply, not only USB)?")
    servo = replies[0]
    if servo.model_number != tables.model(model).number:
        raise MotorSetupError(f"found a {servo.model_name} (id {servo.id}, {servo.baudrate} bps) but the robot file "
                              f"says {model} ({tables.model(model).number}); connect the right motor, or correct "
                              "the robot file (nothing was written)")
    return servo


@contextlib.contextmanager
def _servo(port: str, servo_id: int, model: str, baudrate: int, slack_ms: float) -> Iterator[DynamixelBus]:
    """A bus holding just this servo (PING and model checked on connect), released without touching torque."""
    bus = DynamixelBus(port, {"servo": (servo_id, model)}, baudrate, timeout_slack_ms=slack_ms)
    bus.connect()
    try:
        yield bus
    finally:
        bus.disconnect(disable_torque=False)


def setup_servo(port: str, model: str, target_id: int, target_baudrate: int,
                progress: Callable[[str], None] = lambda _: None, *, slack_ms: float = 3.0,
                wait_ms: float = PING_WAIT_MS) -> FoundServo:
    """Find the only servo on `port`, write its ID then its Baud_Rate (torque off: EEPROM), read both back at the
    new rate; returns what was found before the change. `slack_ms`: extra reply time (DynamixelBus's);
    `wait_ms`: how long each broadcast PING listens."""
    if target_baudrate not in tables.BAUD_CODES:
        raise MotorSetupError(f"baud rate {target_baudrate} is not an X-series rate {sorted(tables.BAUD_CODES)}")
    found = find_single_servo(port, model, target_baudrate, progress, wait_ms)
    try:
        with _servo(port, found.id, model, found.baudrate, slack_ms) as bus:
            bus.write("Torque_Enable", "servo", 0)
            if found.id != target_id:
                bus.write("ID", "servo", target_id)
        with _servo(port, target_id, model, found.baudrate, slack_ms) as bus:
            if bus.read("ID", "servo") != target_id:
                raise MotorSetupError(f"the servo did not keep ID {target_id}")
            if found.baudrate != target_baudrate:
                bus.write("Baud_Rate", "servo", tables.BAUD_CODES[target_baudrate])
        with _servo(port, target_id, model, target_baudrate, slack_ms) as bus:
            code = bus.read("Baud_Rate", "servo")
            if tables.BAUD_RATES.get(code) != target_baudrate:
                raise MotorSetupError(f"the servo reads Baud_Rate {code} after writing {target_baudrate} bps")
    except BusError as exc:
        raise MotorSetupError(f"setting id {target_id} / {target_baudrate} bps on the {model} found at id "
                              f"{found.id}, {found.baudrate} bps: {exc}") from None
    return found
