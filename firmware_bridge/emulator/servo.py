"""One emulated X-series servo: its control table and the e-manual's register semantics, driving the physics.

Positions follow the e-manual's account (control_table_opmode_note.md, homing_offset.md, drive_mode.md): the servo
counts an "actual position" from the encoder in the direction Drive_Mode bit 0 selects, continuously over many
turns, and reseats it inside one turn (0..4095) at power-on and REBOOT, when Operating_Mode changes to position
mode (3), when torque goes on in position mode, and on CLEAR; Present_Position = actual position + Homing_Offset,
the offset's sign never reversed. docs/firmware_bridge.md lists every behaviour with its source.
"""

from __future__ import annotations

import math
from collections import deque
from functools import lru_cache

from firmware_bridge import tables
from firmware_bridge.emulator.faults import Faults
from firmware_bridge.emulator.physics import (
    ACCEL_UNIT,
    CURRENT,
    FREE,
    POSITION,
    PWM,
    VELOCITY,
    VELOCITY_UNIT,
    Hand,
    Motor,
    MotorParams,
    Profile,
)
from firmware_bridge.tables import Model, Register

MODES = tables.OPERATING_MODES
POSITION_MODE, CURRENT_MODE, CURRENT_POSITION_MODE = MODES["position"], MODES["current"], MODES["current_position"]
POSITION_MODES = tuple(MODES[name] for name in tables.POSITION_MODES)
MODE_KIND = {MODES["current"]: CURRENT, MODES["velocity"]: VELOCITY, **{mode: POSITION for mode in POSITION_MODES},
             MODES["pwm"]: PWM}
REVERSE, TIME_BASED_PROFILE, TORQUE_ON_BY_GOAL = 0x01, 0x04, 0x08  # Drive_Mode bits
WATCHDOG_UNIT_S = tables.WATCHDOG_UNIT_MS / 1000
OVERLOAD_DETECT_S = 1.0  # the e-manual's "persistent load": how long the output must stay saturated
STEP_S = 0.005  # physics substep
GOALS = ("Goal_PWM", "Goal_Current", "Goal_Velocity", "Goal_Position")
AFTER_STATUS = ("ID", "Baud_Rate")  # take effect once the status packet for the write is out
MODE_RESETS = ("Velocity_I_Gain", "Velocity_P_Gain", "Position_D_Gain", "Position_I_Gain", "Position_P_Gain",
               "Feedforward_2nd_Gain", "Feedforward_1st_Gain")


@lru_cache(maxsize=None)
def _layout(model_name: str) -> tuple[dict[int, Register], dict[int, str], dict[str, tuple[int, int, bool, int, int]]]:
    """Per model: byte address -> register owning it; Indirect Data address -> its Indirect Address register;
    register name -> (start, end, signed, smallest, largest storable value)."""
    model = tables.model(model_name)
    owner = {r.address + k: r for r in model.registers.values() for k in range(r.size)}
    indirect = {r.address: "Indirect_Address_" + r.name.rsplit("_", 1)[1]
                for r in model.registers.values() if r.name.startswith("Indirect_Data_")}
    slots = {r.name: (r.address, r.address + r.size, r.signed, -(1 << (8 * r.size - 1)) if r.signed else 0,
                      (1 << (8 * r.size - (1 if r.signed else 0))) - 1) for r in model.registers.values()}
    return owner, indirect, slots


class EmulatedServo:
    """One servo: control table, register semantics, motion; `update(now)` advances it to `now`."""

    def __init__(self, servo_id: int, model: Model, baudrate: int, firmware: int, shaft: float, now: float) -> None:
        self.model = model
        self.regs = model.registers
        self._owner, self._indirect, self._slots = _layout(model.name)
        self.table = bytearray(model.size)
        self.faults = Faults()
        self.writes: deque[tuple[str, int]] = deque(maxlen=100_000)  # accepted host writes, for tests
        self.firmware = firmware
        self.motor = Motor(MotorParams.of(model), shaft)
        self.profile = Profile(0.0)
        self.origin = 0.0  # actual position = direction * shaft - origin
        self.pending: dict[str, int] = {}  # ID / Baud_Rate writes waiting for their status packet
        self.registered: tuple[int, bytes] | None = None  # REG_WRITE waiting for ACTION
        self.move_limits = (math.inf, math.inf)  # the current move's profile limits (time-based profile)
        self.hand: Hand | None = None
        self.hand_since = now
        self.hand_centre = shaft
        self.overheat = False  # injected: the winding held at Temperature_Limit
        self.saturated_s = 0.0
        self.boot = self.last_update = self.last_instruction = now
        self._stale = True
        self._factory_eeprom(servo_id, tables.BAUD_CODES[baudrate])
        self.reset_ram(now)

    # ---- control table -----------------------------------------------------------------------------------

    def get(self, name: str) -> int:
        """Current value of register `name`."""
        start, end, signed, _, _ = self._slots[name]
        return int.from_bytes(self.table[start:end], "little", signed=signed)

    def put(self, name: str, value: int) -> None:
        """Store `value` without any checks (the servo's own bookkeeping), clipped to the register's bytes."""
        start, end, signed, lo, hi = self._slots[name]
        self.table[start:end] = max(lo, min(int(value), hi)).to_bytes(end - start, "little", signed=signed)

    def _factory_eeprom(self, servo_id: int, baud_code: int) -> None:
        """Every register's factory value from the model's table (e-manual "Initial Value" column)."""
        for reg in self.regs.values():
            if reg.initial is not None and reg.eeprom:
                self.put(reg.name, reg.initial)
        self.put("Firmware_Version", self.firmware)
        self.put("ID", servo_id)
        self.put("Baud_Rate", baud_code)

    def reset_ram(self, now: float) -> None:
        """Power-on / REBOOT: RAM at its factory values, errors cleared, torque off, position inside one turn,
        Goal_Position = Present_Position (the e-manual gives no initial goal); then Startup_Configuration: bit 0
        turns torque on (startup_configuration.md). Its bit 1 restores RAM from a backup, which only the CONTROL
        TABLE BACKUP instruction makes and this emulator does not implement (Backup_Ready stays 0): no effect."""
        for reg in self.regs.values():
            if not reg.eeprom:
                self.put(reg.name, reg.initial if reg.initial is not None else 0)
        self.put("Goal_PWM", self.get("PWM_Limit"))
        if "Goal_Current" in self.regs:
            self.put("Goal_Current", self.get("Current_Limit"))
        self.pending.clear()
        self.registered = None
        self.boot = self.last_instruction = now
        self.saturated_s = 0.0
        self._seat_single_turn()
        self._hold_here()
        self._take_by_hand(now)
        self._stale = True
        if self.firmware >= self.model.startup_firmware and "Startup_Configuration" in self.regs \
                and self.get("Startup_Configuration") & tables.STARTUP_TORQUE_ON:
            self._set_torque(True, now)

    def power_off(self, now: float) -> None:
        """The supply is gone: the motor goes limp at once (the control table is lost; `reset_ram` at power-up)."""
        self._set_torque(False, now)

    def factory_reset(self, option: int, now: float) -> None:
        """FACTORY_RESET: 0xFF everything, 0x01 all but ID, 0x02 all but ID and baud rate; then a reboot."""
        factory = self.model.registers
        servo_id = self.get("ID") if option in (0x01, 0x02) else factory["ID"].initial
        baud = self.get("Baud_Rate") if option == 0x02 else factory["Baud_Rate"].initial
        self._factory_eeprom(servo_id, baud)
        self.reset_ram(now)

    @property
    def torque(self) -> bool:
        """Torque_Enable is set."""
        return self.get("Torque_Enable") == 1

    @property
    def direction(self) -> int:
        """-1 when Drive_Mode bit 0 selects reverse rotation."""
        return -1 if self.get("Drive_Mode") & REVERSE else 1

    @property
    def baudrate(self) -> int:
        """The bit rate this servo listens and answers at."""
        return tables.BAUD_RATES[self.get("Baud_Rate")]

    @property
    def speaks_protocol_2(self) -> bool:
        """Protocol_Type 2 (the emulator serves Protocol 2.0 only; a servo switched to 1.0 stops hearing it)."""
        return self.get("Protocol_Type") == 2

    @property
    def secondary_id(self) -> int | None:
        """The Secondary (shadow) ID when active (0..252; 253..255 switch it off)."""
        value = self.get("Secondary_ID")
        return value if value < tables.SECONDARY_ID_OFF else None

    def answers_to(self, packet_id: int) -> bool:
        """The packet is for this servo's own ID (which takes priority over its Secondary ID)."""
        return self.get("ID") == packet_id

    def shadows(self, packet_id: int) -> bool:
        """The packet reaches this servo through its Secondary ID only: it acts but never replies."""
        return self.secondary_id == packet_id and not self.answers_to(packet_id)

    def status_error(self, error: int = 0) -> int:
        """The ERR byte: `error` plus the alert bit while a hardware error is latched."""
        return error | (tables.ERR_ALERT if self.get("Hardware_Error_Status") else 0)

    # ---- positions -------------------------------------------------------------------------------------------

    @property
    def actual(self) -> float:
        """The servo's own position count (Drive_Mode direction, multi-turn), before Homing_Offset."""
        return self.direction * self.motor.shaft - self.origin

    @property
    def homing(self) -> int:
        """Homing_Offset as applied: position mode ignores offsets beyond +-1,024 (homing_offset.md, NOTE)."""
        offset = self.get("Homing_Offset")
        if self.get("Operating_Mode") == POSITION_MODE and abs(offset) > tables.POSITION_MODE_HOMING_LIMIT:
            return 0
        return offset

    def _seat_single_turn(self) -> None:
        """Reset the actual position to the absolute value within one turn (control_table_opmode_note.md)."""
        turned = self.direction * self.motor.shaft
        self.origin = math.floor(turned / self.model.resolution) * self.model.resolution

    def _hold_here(self) -> None:
        """Goal_Position = Present_Position and the profile at rest there."""
        self.put("Goal_Position", round(self.actual) + self.homing)
        self.profile.reset(self.actual)

    # ---- READ / WRITE ------------------------------------------------------------------------------------------

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """READ semantics: (ERR, data); outside the control table is an access error (protocol2.md, Read)."""
        if length < 1 or address < 0 or address + length > len(self.table):
            return self.status_error(tables.ERR_ACCESS), b""
        self.refresh()
        data = bytearray(self.table[address : address + length])
        for at, pointer in self._indirect.items():
            if address <= at < address + length:
                data[at - address] = self.table[self.get(pointer)]
        return self.status_error(), bytes(data)

    def write(self, address: int, data: bytes, now: float, via_secondary: bool = False) -> int:
        """WRITE semantics, all-or-nothing; returns the ERR byte. Indirect Data bytes land where their Indirect
        Address points; through the Secondary ID the EEPROM cannot be modified (shadow_id.md)."""
        if not data:
            return self.status_error(tables.ERR_DATA_LENGTH)
        landing: dict[int, int] = {}
        for i, byte in enumerate(data):
            at = address + i
            landing[self.get(self._indirect[at]) if at in self._indirect else at] = byte
        covered: dict[str, Register] = {}
        for at in landing:
            reg = self._owner.get(at)
            if reg is None:
                return self.status_error(tables.ERR_ACCESS)  # an address the table does not define
            covered[reg.name] = reg
        values = {}
        for reg in sorted(covered.values(), key=lambda r: r.address):
            if any(reg.address + k not in landing for k in range(reg.size)):
                return self.status_error(tables.ERR_DATA_LENGTH)
            value = reg.decode(bytes(landing[reg.address + k] for k in range(reg.size)))
            error = self._check(reg, value, via_secondary)
            if error:
                return self.status_error(error)
            values[reg.name] = value
        for name, value in values.items():
            self.writes.append((name, value))
            self._apply(name, value, now)
        return self.status_error()

    def _check(self, reg: Register, value: int, via_secondary: bool) -> int:
        """The status error a write of `value` to `reg` gets, 0 when it is accepted."""
        if not reg.writable or (reg.eeprom and (self.torque or via_secondary)):
            return tables.ERR_ACCESS
        if not reg.lo <= value <= reg.hi:
            return tables.ERR_DATA_RANGE
        if reg.name == "Operating_Mode" and value not in self.model.operating_modes:
            return tables.ERR_DATA_RANGE
        if reg.name in GOALS and self.get("Bus_Watchdog") == tables.WATCHDOG_FIRED:
            return tables.ERR_DATA_RANGE  # bus_watchdog.md, example step 6
        if reg.bound is not None and abs(value) > self.get(reg.bound):
            return tables.ERR_DATA_LIMIT
        if reg.name == "Goal_Position" and self.get("Operating_Mode") == POSITION_MODE:
            if not self.get("Min_Position_Limit") <= value <= self.get("Max_Position_Limit"):
                return tables.ERR_DATA_LIMIT  # only position mode uses the limits (operating_mode_xl.md)
        return 0

    def _apply(self, name: str, value: int, now: float) -> None:
        """Store an accepted value and carry out what the register does."""
        if name in AFTER_STATUS:
            self.pending[name] = value
            return
        if name == "Torque_Enable":
            self._set_torque(bool(value), now)
            return
        old = self.get(name)
        self.put(name, value)
        if name == "Operating_Mode" and value != old:
            self._mode_changed(value)
        elif name == "Drive_Mode" and (value ^ old) & REVERSE:
            # e-manual silent: the count restarts inside one turn in the new direction, the goal where the joint is
            self._seat_single_turn()
            self._hold_here()
        elif name == "Bus_Watchdog":
            self.last_instruction = now
        elif name in GOALS:
            if self.get("Drive_Mode") & TORQUE_ON_BY_GOAL and not self.torque:
                self._set_torque(True, now)  # drive_mode.md, bit 3
            if name == "Goal_Position":
                self._plan()

    def commit(self) -> None:
        """Apply ID / Baud_Rate writes, now that their status packet has gone out at the old ID and rate."""
        for name, value in self.pending.items():
            self.put(name, value)
        self.pending.clear()

    def _set_torque(self, on: bool, now: float) -> None:
        if on and self.get("Hardware_Error_Status") & self.get("Shutdown"):
            return  # a shutdown keeps torque off until REBOOT (control_table_shutdown.md)
        if on and not self.torque:
            if self.get("Operating_Mode") == POSITION_MODE:
                self._seat_single_turn()
            self.profile.reset(self.actual)
            self._plan()
            self.last_instruction = now
        elif not on and self.torque:
            self._take_by_hand(now)
        self.put("Torque_Enable", int(on))

    def _mode_changed(self, mode: int) -> None:
        """operating_mode_xl.md / control_table_opmode_six_2.md: gains and profile reset, Goal PWM / Current to
        their limits; a switch to position mode reseats the position inside one turn."""
        for name in MODE_RESETS:
            self.put(name, self.regs[name].initial or 0)
        self.put("Profile_Velocity", 0)
        self.put("Profile_Acceleration", 0)
        self.put("Goal_PWM", self.get("PWM_Limit"))
        if "Goal_Current" in self.regs:
            self.put("Goal_Current", self.get("Current_Limit"))
        self.put("Goal_Velocity", 0)
        if mode == POSITION_MODE:
            self._seat_single_turn()
        self._hold_here()  # e-manual silent on Goal_Position: it is set where the joint is

    def clear_multi_turn(self) -> int:
        """CLEAR 0x01 (protocol2.md, Clear): reseat inside one turn; Result Fail while moving."""
        if self.motor.velocity:
            return self.status_error(tables.ERR_RESULT_FAIL)
        self._seat_single_turn()
        self._hold_here()
        return self.status_error()

    def hardware_error(self, bits: int) -> None:
        """Latch Hardware Error Status bits; the ones selected by Shutdown turn torque off."""
        self.put("Hardware_Error_Status", self.get("Hardware_Error_Status") | bits)
        if bits & self.get("Shutdown") and self.torque:
            self._set_torque(False, self.last_update)

    # ---- motion ----------------------------------------------------------------------------------------------------

    def _target(self) -> float:
        """Goal_Position in the servo's own position count."""
        return self.get("Goal_Position") - self.homing

    def _plan(self) -> None:
        """A new move toward Goal_Position: its limits (fixed per move when the profile is time-based) and type."""
        velocity, acceleration = self.get("Profile_Velocity"), self.get("Profile_Acceleration")
        if self.get("Drive_Mode") & TIME_BASED_PROFILE and velocity:
            # Profile_Velocity is the move's duration, Profile_Acceleration its acceleration time, in ms; the
            # acceleration time is at most half the duration (control_table_profile_velocity.md).
            total, ramp = velocity / 1000.0, min(acceleration, velocity // 2) / 1000.0
            speed = max(abs(self._target() - self.profile.position), 1.0) / (total - ramp)
            self.move_limits = (speed, speed / ramp if ramp else math.inf)
        else:
            self.move_limits = (math.inf, math.inf)
        self.profile.plan(self._target(), *self._profile_limits())

    def _profile_limits(self) -> tuple[float, float]:
        """(velocity, acceleration) limits in position counts per s and s^2, math.inf for a register at 0; a
        velocity-based profile reads the registers live (velocity override), a time-based one keeps the move's."""
        if self.get("Drive_Mode") & TIME_BASED_PROFILE:
            return self.move_limits
        velocity, acceleration = self.get("Profile_Velocity"), self.get("Profile_Acceleration")
        return velocity * VELOCITY_UNIT or math.inf, acceleration * ACCEL_UNIT or math.inf

    def heard_instruction(self, now: float) -> None:
        """An instruction packet went by on the bus: feeds the Bus Watchdog."""
        self.last_instruction = now

    def set_shaft(self, ticks: float, now: float) -> None:
        """Turn the output shaft to `ticks` (encoder ticks, before Drive_Mode and Homing_Offset), as a hand would."""
        self.update(now)
        self.motor.shaft, self.motor.velocity = float(ticks), 0.0
        self.hand_centre, self.hand_since = float(ticks), now
        if self.torque:
            self.profile.reset(self.actual)
        self._stale = True

    def _take_by_hand(self, now: float) -> None:
        self.hand_centre, self.hand_since = self.motor.shaft, now

    def update(self, now: float) -> None:
        """Advance to `now`: watchdog, profile, motor, heat, error detection (present registers on the next read).
        A Bus Watchdog that expires on the way stops the servo at that moment, not at `now`."""
        window = self.get("Bus_Watchdog")
        if self.torque and 0 < window <= tables.WATCHDOG_MAX_UNITS:
            expiry = self.last_instruction + window * WATCHDOG_UNIT_S
            if expiry < now:
                self._advance(max(expiry, self.last_update))
                self._trip_watchdog()
        self._advance(now)

    def _advance(self, now: float) -> None:
        """Integrate the physics up to `now`."""
        dt = now - self.last_update
        if dt <= 0:
            return
        self.last_update = now
        get, motor, profile = self.get, self.motor, self.profile
        torque, mode, direction, homing = self.torque, get("Operating_Mode"), self.direction, self.homing
        kind = MODE_KIND[mode] if torque else FREE
        duty_limit = abs(get("Goal_PWM")) / tables.PWM_FULL_SCALE
        current_limit = None
        if mode in (CURRENT_MODE, CURRENT_POSITION_MODE) and motor.p.current_unit_a:  # current limit in modes 0 and 5
            current_limit = abs(get("Goal_Current")) * motor.p.current_unit_a
        target = get("Goal_Position") - homing
        velocity_limit, acceleration_limit = self._profile_limits()
        steps = max(1, math.ceil(dt / STEP_S))
        h = dt / steps
        for i in range(steps):
            if kind == FREE:
                if self.hand is None:
                    motor.step(dt - i * h, FREE, 0.0, 0.0, 0.0, None)
                    break
                previous = motor.shaft
                motor.step(h, FREE, 0.0, 0.0, 0.0, None)
                motor.shaft = self.hand_centre + self.hand.offset(now - dt + (i + 1) * h - self.hand_since)
                motor.velocity = (motor.shaft - previous) / h
                continue
            if kind == POSITION:
                if not profile.moving and profile.position == target and motor.at_rest \
                        and motor.shaft == direction * (target + self.origin):
                    motor.step(dt - i * h, FREE, 0.0, 0.0, 0.0, None)  # holding still: only cooling
                    break
                planned = profile.position  # where the trajectory is at the start of this substep
                profile.step(h, target, velocity_limit, acceleration_limit)
                shaft_target = direction * ((planned if profile.moving else target) + self.origin)
                motor.step(h, POSITION, shaft_target, direction * profile.velocity, duty_limit, current_limit)
            elif kind == VELOCITY:
                profile.ramp(h, get("Goal_Velocity") * VELOCITY_UNIT, acceleration_limit)
                motor.step(h, VELOCITY, direction * profile.velocity, 0.0, duty_limit, current_limit)
            elif kind == PWM:
                motor.step(h, PWM, direction * get("Goal_PWM") / tables.PWM_FULL_SCALE, 0.0, 1.0, None)
            else:
                motor.step(h, CURRENT, direction * get("Goal_Current") * motor.p.current_unit_a, 0.0, duty_limit, None)
            self.saturated_s = self.saturated_s + h if motor.saturated else 0.0
        self._detect_errors()
        self._stale = True

    def _trip_watchdog(self) -> None:
        """bus_watchdog.md: no instruction for the window with torque on stops the servo (Profile Velocity and
        Acceleration to 0) and the register reads -1, which locks the goals until it is written 0."""
        self.put("Bus_Watchdog", tables.WATCHDOG_FIRED)
        self.put("Profile_Velocity", 0)
        self.put("Profile_Acceleration", 0)
        self.put("Goal_Velocity", 0)
        self._hold_here()

    def _detect_errors(self) -> None:
        """Overheating, persistent overload and input voltage, latched into Hardware_Error_Status."""
        limit = self.get("Temperature_Limit")
        if self.overheat:
            self.motor.temperature = max(self.motor.temperature, float(limit))
        bits = 0
        if self.motor.temperature >= limit:
            bits |= tables.HW_OVERHEATING
        if self.saturated_s >= OVERLOAD_DETECT_S:
            bits |= tables.HW_OVERLOAD
        if not self.get("Min_Voltage_Limit") <= self.model.input_voltage <= self.get("Max_Voltage_Limit"):
            bits |= tables.HW_INPUT_VOLTAGE
        if bits & ~self.get("Hardware_Error_Status"):
            self.hardware_error(bits)

    def refresh(self) -> None:
        """Present_*, trajectories, Moving / Moving_Status and Realtime_Tick from the physics, when they are stale
        (the physics runs on every packet; the registers are brought up to date when someone reads them)."""
        if not self._stale:
            return
        self._stale = False
        now = self.last_update
        get, put, motor, profile = self.get, self.put, self.motor, self.profile
        sign, homing, torque = self.direction, self.homing, self.torque
        present = round(sign * motor.shaft - self.origin) + homing
        put("Present_Position", present)
        velocity = round(sign * motor.velocity / VELOCITY_UNIT)
        put("Present_Velocity", velocity)
        full = tables.PWM_FULL_SCALE
        put("Present_PWM", round(sign * motor.duty(abs(get("Goal_PWM")) / full) * full))
        if motor.p.current_unit_a is None:  # an inferred load: the output as a share of the stall current
            put("Present_Load", max(-1000, min(1000, round(sign * 1000 * motor.current / motor.p.stall_current))))
        else:
            put("Present_Current", round(sign * motor.current / motor.p.current_unit_a))
        put("Present_Temperature", round(motor.temperature))
        put("Present_Input_Voltage", self.model.input_voltage)
        put("Realtime_Tick", int((now - self.boot) * 1000) % 32768)
        positional = torque and get("Operating_Mode") in POSITION_MODES
        put("Velocity_Trajectory", round(profile.velocity / VELOCITY_UNIT) if torque else 0)
        put("Position_Trajectory", round(profile.position) + homing if positional else present)
        put("Moving", int(abs(velocity) > get("Moving_Threshold") or (positional and profile.moving)))
        status = 0
        if positional:
            status = profile.kind | (0x02 if profile.moving else 0) | (0x08 if motor.saturated else 0)
            if not profile.moving and abs(present - get("Goal_Position")) <= 1:
                status |= 0x01
        put("Moving_Status", status)
