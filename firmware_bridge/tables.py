"""X-series control tables (Protocol 2.0): register names as the ROBOTIS e-manual writes them.

One table serves the bus (encoding, validation) and the emulator (register semantics), so the two
cannot disagree on an address or a width.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.errors import RequestError


@dataclass(frozen=True)
class Register:
    """One control-table entry: where it lives, how wide, and which values are legal."""

    name: str
    address: int
    size: int
    writable: bool = False
    eeprom: bool = False
    signed: bool = False
    min: int | None = None
    max: int | None = None

    @property
    def lo(self) -> int:
        """Smallest legal value."""
        if self.min is not None:
            return self.min
        return -(1 << (8 * self.size - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        """Largest legal value."""
        if self.max is not None:
            return self.max
        return (1 << (8 * self.size - 1)) - 1 if self.signed else (1 << (8 * self.size)) - 1

    def encode(self, value: int) -> bytes:
        """Little-endian two's-complement bytes of `value` (range already checked)."""
        return int(value).to_bytes(self.size, "little", signed=self.signed)

    def decode(self, data: bytes | bytearray | list[int]) -> int:
        """Value of the little-endian register bytes, sign-extended for signed registers."""
        return int.from_bytes(bytes(data[: self.size]), "little", signed=self.signed)


EXTENDED_POSITION = 1_048_575  # +-256 turns in extended position mode

_X_SERIES = [
    Register("Model_Number", 0, 2, eeprom=True),
    Register("Model_Information", 2, 4, eeprom=True),
    Register("Firmware_Version", 6, 1, eeprom=True),
    Register("ID", 7, 1, True, True, max=252),
    Register("Baud_Rate", 8, 1, True, True, max=7),
    Register("Return_Delay_Time", 9, 1, True, True, max=254),
    Register("Drive_Mode", 10, 1, True, True, max=13),
    Register("Operating_Mode", 11, 1, True, True, max=16),
    Register("Secondary_ID", 12, 1, True, True, max=255),
    Register("Protocol_Type", 13, 1, True, True, min=1, max=2),
    Register("Homing_Offset", 20, 4, True, True, signed=True, min=-EXTENDED_POSITION, max=EXTENDED_POSITION),
    Register("Moving_Threshold", 24, 4, True, True, max=1023),
    Register("Temperature_Limit", 31, 1, True, True, max=100),
    Register("Max_Voltage_Limit", 32, 2, True, True, max=160),
    Register("Min_Voltage_Limit", 34, 2, True, True, max=160),
    Register("PWM_Limit", 36, 2, True, True, max=885),
    Register("Current_Limit", 38, 2, True, True, max=2047),
    Register("Velocity_Limit", 44, 4, True, True, max=1023),
    Register("Max_Position_Limit", 48, 4, True, True, max=4095),
    Register("Min_Position_Limit", 52, 4, True, True, max=4095),
    Register("Shutdown", 63, 1, True, True, max=255),
    Register("Torque_Enable", 64, 1, True, max=1),
    Register("LED", 65, 1, True, max=1),
    Register("Status_Return_Level", 68, 1, True, max=2),
    Register("Registered_Instruction", 69, 1),
    Register("Hardware_Error_Status", 70, 1),
    Register("Velocity_I_Gain", 76, 2, True, max=16383),
    Register("Velocity_P_Gain", 78, 2, True, max=16383),
    Register("Position_D_Gain", 80, 2, True, max=16383),
    Register("Position_I_Gain", 82, 2, True, max=16383),
    Register("Position_P_Gain", 84, 2, True, max=16383),
    Register("Bus_Watchdog", 98, 1, True, max=127),
    Register("Goal_PWM", 100, 2, True, signed=True, min=-885, max=885),
    Register("Goal_Current", 102, 2, True, signed=True, min=-2047, max=2047),
    Register("Goal_Velocity", 104, 4, True, signed=True, min=-1023, max=1023),
    Register("Profile_Acceleration", 108, 4, True, max=32767),
    Register("Profile_Velocity", 112, 4, True, max=32767),
    Register("Goal_Position", 116, 4, True, signed=True, min=-EXTENDED_POSITION, max=EXTENDED_POSITION),
    Register("Realtime_Tick", 120, 2),
    Register("Moving", 122, 1),
    Register("Moving_Status", 123, 1),
    Register("Present_PWM", 124, 2, signed=True),
    Register("Present_Current", 126, 2, signed=True),
    Register("Present_Velocity", 128, 4, signed=True),
    Register("Present_Position", 132, 4, signed=True),
    Register("Velocity_Trajectory", 136, 4, signed=True),
    Register("Position_Trajectory", 140, 4, signed=True),
    Register("Present_Input_Voltage", 144, 2),
    Register("Present_Temperature", 146, 1),
]
# XL430/XC430 have no current sensing: no Current_Limit/Goal_Current, and 126 is Present_Load.
_NO_CURRENT = {"Current_Limit", "Goal_Current", "Present_Current"}
_PRESENT_LOAD = Register("Present_Load", 126, 2, signed=True)


@dataclass(frozen=True)
class Model:
    """A servo model: its model number, operating modes and control table."""

    name: str
    number: int
    operating_modes: tuple[int, ...]
    registers: dict[str, Register]
    input_voltage: int  # 0.1 V, what the emulator reports


def _table(current_sensing: bool) -> dict[str, Register]:
    regs = [r for r in _X_SERIES if current_sensing or r.name not in _NO_CURRENT]
    if not current_sensing:
        regs.append(_PRESENT_LOAD)
    return {r.name: r for r in sorted(regs, key=lambda r: r.address)}


_FULL_MODES = (0, 1, 3, 4, 5, 16)
MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("xl330-m077", 1190, _FULL_MODES, _table(True), 50),
        Model("xl330-m288", 1200, _FULL_MODES, _table(True), 50),
        Model("xl430-w250", 1060, (1, 3, 4, 16), _table(False), 120),
        Model("xc430-w150", 1070, (1, 3, 4, 16), _table(False), 120),
        Model("xm430-w210", 1030, _FULL_MODES, _table(True), 120),
        Model("xm430-w350", 1020, _FULL_MODES, _table(True), 120),
        Model("xm540-w270", 1120, _FULL_MODES, _table(True), 120),
    )
}
MODEL_BY_NUMBER = {m.number: m for m in MODELS.values()}

OPERATING_MODES = {"current": 0, "velocity": 1, "position": 3, "extended_position": 4,
                   "current_position": 5, "pwm": 16}
# Baud Rate register value -> bits per second.
BAUD_RATES = {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000,
              7: 4_500_000}
BAUD_CODES = {bps: code for code, bps in BAUD_RATES.items()}

# FAST SYNC READ exists on X-series firmware 45 and later (e-manual, protocol 2.0; unverified on hardware).
FAST_SYNC_READ_MIN_FIRMWARE = 45

# Hardware Error Status bits.
HW_INPUT_VOLTAGE = 0x01
HW_OVERHEATING = 0x04
HW_ENCODER = 0x08
HW_ELECTRICAL_SHOCK = 0x10
HW_OVERLOAD = 0x20
HW_ERROR_NAMES = {HW_INPUT_VOLTAGE: "input voltage", HW_OVERHEATING: "overheating", HW_ENCODER: "motor encoder",
                  HW_ELECTRICAL_SHOCK: "electrical shock", HW_OVERLOAD: "overload"}

# Status packet ERR byte.
ERR_ALERT = 0x80
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = range(1, 8)
ERR_NAMES = {ERR_RESULT_FAIL: "result fail", ERR_INSTRUCTION: "instruction error", ERR_CRC: "CRC error",
             ERR_DATA_RANGE: "data range error", ERR_DATA_LENGTH: "data length error",
             ERR_DATA_LIMIT: "data limit error", ERR_ACCESS: "access error (EEPROM locked while torque is on?)"}


def describe_hw_error(bits: int) -> str:
    """'overload, overheating' for a Hardware Error Status value."""
    return ", ".join(name for bit, name in HW_ERROR_NAMES.items() if bits & bit) or "none"


def describe_status_error(err: int) -> str:
    """Human-readable status ERR byte."""
    parts = [ERR_NAMES.get(err & 0x7F, f"error {err & 0x7F}")] if err & 0x7F else []
    if err & ERR_ALERT:
        parts.append("hardware alert")
    return ", ".join(parts)


def model(name: str) -> Model:
    """The model called `name`, or a RequestError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise RequestError(f"unknown Dynamixel model {name!r}; known: {', '.join(sorted(MODELS))}") from None
