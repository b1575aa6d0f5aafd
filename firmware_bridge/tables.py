"""X-series control tables (Protocol 2.0) as data: every register of every supported model, as the e-manual lists it.

One table serves the bus (encoding, validation) and the emulator (register semantics, factory values), so the two
cannot disagree on an address, a width, an access right or a range. Sources: ROBOTIS e-manual pages in the public
repository ROBOTIS-GIT/emanual, docs/en/dxl/x/<model>.md ("Control Table of EEPROM Area" / "of RAM Area") and,
for the motor figures, _data/dxl_x_info.yml (the "Specifications" table of each page).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from firmware_bridge.errors import RequestError


@dataclass(frozen=True)
class Register:
    """One control-table entry: where it lives, how wide, who may write it, which values are legal.

    `min`/`max` are the register's fixed range; `bound` names the register whose value bounds this one
    (Goal_PWM within +-PWM_Limit, ...), which the servo checks (data limit error); `initial` is the factory value
    (None: set by the servo at run time).
    """

    name: str
    address: int
    size: int
    writable: bool = False
    eeprom: bool = False
    signed: bool = False
    min: int | None = None
    max: int | None = None
    initial: int | None = None
    bound: str | None = None

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

    @property
    def layout(self) -> tuple[int, int, bool]:
        """(address, size, signed): what a group transaction needs to be the same across models."""
        return self.address, self.size, self.signed

    def encode(self, value: int) -> bytes:
        """Little-endian two's-complement bytes of `value` (range already checked)."""
        return int(value).to_bytes(self.size, "little", signed=self.signed)

    def decode(self, data: bytes | bytearray | list[int]) -> int:
        """Value of the little-endian register bytes, sign-extended for signed registers."""
        return int.from_bytes(bytes(data[: self.size]), "little", signed=self.signed)


@dataclass(frozen=True)
class MotorSpec:
    """Datasheet figures at the recommended supply (e-manual "Specifications", the bold column)."""

    stall_torque_nm: float
    stall_current_a: float
    no_load_rpm: float


TICKS_PER_TURN = 4096  # encoder resolution ("Specifications": 4096 pulse/rev on every X-series page)
PWM_FULL_SCALE = 885  # PWM_Limit / Goal_PWM full scale, 100 % (0.113 % per unit)


@dataclass(frozen=True)
class Model:
    """A servo model: model number, operating modes, control table, supply and motor figures."""

    name: str
    number: int
    operating_modes: tuple[int, ...]
    registers: dict[str, Register]
    input_voltage: int  # 0.1 V: the recommended supply, what the emulator reports
    motor: MotorSpec
    current_unit_ma: float | None  # Present/Goal_Current unit; None: no current sensing (Present_Load, 0.1 %)
    page: str  # e-manual page the table was taken from
    fast_read_firmware: int  # first firmware with FAST SYNC/BULK READ (protocol2.md: X430/540 v45, X330 v46)
    startup_firmware: int = 45  # first firmware with Startup_Configuration(60): v45, XL330/XC330 v46
    resolution: int = TICKS_PER_TURN  # encoder ticks per turn

    @property
    def size(self) -> int:
        """Bytes of control table (one past the last register)."""
        return max(r.address + r.size for r in self.registers.values())


# Return_Delay_Time(9): 0..254 in 2 us units (factory 250 = 0.5 ms): each reply waits that long before it is sent.
RETURN_DELAY_UNIT_US = 2
RETURN_DELAY_MAX_US = 254 * RETURN_DELAY_UNIT_US
# Startup_Configuration(60) bits (startup_configuration.md): applied at power-up and reboot.
STARTUP_TORQUE_ON, STARTUP_RAM_RESTORE = 0x01, 0x02

MAX_ID = 252  # ID(7): 0 ~ 252; 253 is reserved and 254 (0xFE) is the broadcast ID
EXTENDED_POSITION = 1_048_575  # Goal_Position in extended / current-based position mode: +-256 turns
HOMING_OFFSET_LIMIT = 1_044_479  # Homing_Offset: +-255 turns (every X-series page, address 20)
POSITION_MODE_HOMING_LIMIT = 1024  # homing_offset.md: in position mode, offsets beyond +-1,024 are ignored
SECONDARY_ID_OFF = 253  # Secondary_ID 253..255 switch the function off (e-manual, Secondary(Shadow) ID(12))

# Bus_Watchdog(98): 1..127 in 20 ms units; 0 switches it off, and it reads 0xFF (-1) once it has fired.
WATCHDOG_UNIT_MS = 20
WATCHDOG_MAX_UNITS = 127
WATCHDOG_FIRED = 0xFF


def _r(name: str, address: int, size: int, access: str, lo: int | None = None, hi: int | None = None,
       initial: int | None = None, *, signed: bool = False, bound: str | None = None) -> Register:
    """A register as the e-manual's table row reads: access "R" or "RW"; EEPROM below address 64."""
    return Register(name, address, size, access == "RW", address < 64, signed, lo, hi, initial, bound)


# The rows every X-series model shares (XL330, XL430, XC430, XM430, XM540 pages); per-model values below.
_COMMON = [
    _r("Model_Number", 0, 2, "R"),
    _r("Model_Information", 2, 4, "R", initial=0),
    _r("Firmware_Version", 6, 1, "R"),
    _r("ID", 7, 1, "RW", 0, MAX_ID, 1),
    _r("Baud_Rate", 8, 1, "RW", 0, 7, 1),
    _r("Return_Delay_Time", 9, 1, "RW", 0, 254, 250),
    _r("Drive_Mode", 10, 1, "RW", 0, 13, 0),
    _r("Operating_Mode", 11, 1, "RW", 0, 16, 3),
    _r("Secondary_ID", 12, 1, "RW", 0, 255, 255),  # the table says 0 ~ MAX_ID; SECONDARY_ID_OFF ~ 255 switch it off
    _r("Protocol_Type", 13, 1, "RW", 1, 2, 2),
    _r("Homing_Offset", 20, 4, "RW", -HOMING_OFFSET_LIMIT, HOMING_OFFSET_LIMIT, 0, signed=True),
    _r("Moving_Threshold", 24, 4, "RW", 0, 1023, 10),
    _r("Temperature_Limit", 31, 1, "RW", 0, 100),
    _r("Max_Voltage_Limit", 32, 2, "RW"),
    _r("Min_Voltage_Limit", 34, 2, "RW"),
    _r("PWM_Limit", 36, 2, "RW", 0, PWM_FULL_SCALE, PWM_FULL_SCALE),
    _r("Velocity_Limit", 44, 4, "RW", 0, 1023),
    _r("Max_Position_Limit", 48, 4, "RW", 0, 4095, 4095),
    _r("Min_Position_Limit", 52, 4, "RW", 0, 4095, 0),
    _r("Shutdown", 63, 1, "RW", 0, 255, 52),
    _r("Torque_Enable", 64, 1, "RW", 0, 1, 0),
    _r("LED", 65, 1, "RW", 0, 1, 0),
    _r("Status_Return_Level", 68, 1, "RW", 0, 2, 2),
    _r("Registered_Instruction", 69, 1, "R", 0, 1, 0),
    _r("Hardware_Error_Status", 70, 1, "R", initial=0),
    _r("Velocity_I_Gain", 76, 2, "RW", 0, 16383),
    _r("Velocity_P_Gain", 78, 2, "RW", 0, 16383),
    _r("Position_D_Gain", 80, 2, "RW", 0, 16383),
    _r("Position_I_Gain", 82, 2, "RW", 0, 16383),
    _r("Position_P_Gain", 84, 2, "RW", 0, 16383),
    _r("Feedforward_2nd_Gain", 88, 2, "RW", 0, 16383, 0),
    _r("Feedforward_1st_Gain", 90, 2, "RW", 0, 16383, 0),
    _r("Bus_Watchdog", 98, 1, "RW", 0, WATCHDOG_MAX_UNITS, 0),  # reads WATCHDOG_FIRED (-1) after it fired
    _r("Goal_PWM", 100, 2, "RW", -PWM_FULL_SCALE, PWM_FULL_SCALE, signed=True, bound="PWM_Limit"),
    _r("Goal_Velocity", 104, 4, "RW", -1023, 1023, signed=True, bound="Velocity_Limit"),
    _r("Profile_Acceleration", 108, 4, "RW", 0, 32767, 0),
    _r("Profile_Velocity", 112, 4, "RW", 0, 32767, 0),
    _r("Goal_Position", 116, 4, "RW", -EXTENDED_POSITION, EXTENDED_POSITION, signed=True),
    _r("Realtime_Tick", 120, 2, "R", 0, 32767),
    _r("Moving", 122, 1, "R", 0, 1, 0),
    _r("Moving_Status", 123, 1, "R", initial=0),
    _r("Present_PWM", 124, 2, "R", signed=True),
    _r("Present_Velocity", 128, 4, "R", signed=True),
    _r("Present_Position", 132, 4, "R", signed=True),
    _r("Velocity_Trajectory", 136, 4, "R", signed=True),
    _r("Position_Trajectory", 140, 4, "R", signed=True),
    _r("Present_Input_Voltage", 144, 2, "R"),
    _r("Present_Temperature", 146, 1, "R"),
]


def _current_registers(limit: int) -> list[Register]:
    """Current sensing models: Current_Limit(38), Goal_Current(102), Present_Current(126)."""
    return [_r("Current_Limit", 38, 2, "RW", 0, limit, limit),
            _r("Goal_Current", 102, 2, "RW", -limit, limit, signed=True, bound="Current_Limit"),
            _r("Present_Current", 126, 2, "R", signed=True)]


# XL430/XC430: no current sensing; 126 is Present_Load, -1,000 ~ 1,000 in 0.1 % of the maximum torque.
_LOAD_REGISTERS = [_r("Present_Load", 126, 2, "R", -1000, 1000, signed=True)]


def _indirect(count: int, address_max: int, data_base: int) -> list[Register]:
    """Indirect Address n (168 + 2(n-1); 29..56 at 578) and Indirect Data n, with their factory pointers."""
    regs = []
    for n in range(1, count + 1):
        address = 168 + 2 * (n - 1) if n <= 28 else 578 + 2 * (n - 29)
        data = data_base + (n - 1) if n <= 28 else 634 + (n - 29)
        regs.append(_r(f"Indirect_Address_{n}", address, 2, "RW", 64, address_max, data))
        regs.append(_r(f"Indirect_Data_{n}", data, 1, "RW", 0, 255, 0))
    return regs


def _model(name: str, number: int, modes: tuple[int, ...], volts: int, motor: MotorSpec, current_unit_ma: float | None,
           page: str, values: dict[str, tuple[int | None, int | None, int | None]], extra: list[Register]) -> Model:
    """A model from the common rows, its own (initial, min, max) per register (None keeps the common one), extras."""
    regs = {r.name: r for r in _COMMON + extra}
    for reg_name, (initial, lo, hi) in values.items():
        reg = regs[reg_name]
        regs[reg_name] = replace(reg, initial=reg.initial if initial is None else initial,
                                 min=reg.min if lo is None else lo, max=reg.max if hi is None else hi)
    regs["Model_Number"] = replace(regs["Model_Number"], initial=number)
    velocity_limit = regs["Velocity_Limit"].hi
    regs["Goal_Velocity"] = replace(regs["Goal_Velocity"], min=-velocity_limit, max=velocity_limit)
    table = dict(sorted(regs.items(), key=lambda item: item[1].address))
    return Model(name, number, modes, table, volts, motor, current_unit_ma, page,
                 fast_read_firmware=46 if name.startswith("xl330") else 45,
                 startup_firmware=46 if name.startswith("xl330") else 45)


OPERATING_MODES = {"current": 0, "velocity": 1, "position": 3, "extended_position": 4,
                   "current_position": 5, "pwm": 16}
MODE_NAMES = {v: k for k, v in OPERATING_MODES.items()}  # Operating_Mode value -> name
_ALL_MODES = tuple(OPERATING_MODES.values())
_NO_CURRENT_MODES = tuple(v for k, v in OPERATING_MODES.items() if k not in ("current", "current_position"))
# Drive_Mode bits per product group (_includes/en/dxl/x/drive_mode.md): bit 0 reverse, bit 2 time-based profile,
# bit 3 torque on by goal update on XL330/X430/X540; bit 1 leader/follower only on X540.
_PWM_SLOPE = [_r("PWM_Slope", 62, 1, "RW", 1, 255, 140)]
_STARTUP = [_r("Startup_Configuration", 60, 1, "RW", 0, 3, 0), _r("Backup_Ready", 147, 1, "R", 0, 1, 0)]
_XL330 = {"Baud_Rate": (None, None, 6), "Protocol_Type": (None, 2, 22), "Temperature_Limit": (70, None, None),
          "Max_Voltage_Limit": (70, 31, 70), "Min_Voltage_Limit": (35, 31, 70), "Velocity_Limit": (None, None, 2047),
          "Shutdown": (53, None, None), "Position_D_Gain": (0, None, None), "Position_P_Gain": (400, None, None)}
_X430_12V = {"Temperature_Limit": (80, None, None), "Max_Voltage_Limit": (160, 95, 160),
             "Min_Voltage_Limit": (95, 95, 160), "Velocity_I_Gain": (1920, None, None),
             "Velocity_P_Gain": (100, None, None), "Position_D_Gain": (0, None, None), "Position_I_Gain": (0, None, None),
             "Position_P_Gain": (800, None, None)}

MODELS: dict[str, Model] = {m.name: m for m in (
    _model("xl330-m077", 1190, _ALL_MODES, 50, MotorSpec(0.215, 1.47, 383), 1.0, "docs/en/dxl/x/xl330-m077.md",
           {**_XL330, "Velocity_Limit": (1620, None, 2047), "Velocity_I_Gain": (400, None, None),
            "Velocity_P_Gain": (40, None, None), "Position_I_Gain": (400, None, None)},
           _current_registers(1750) + _PWM_SLOPE + _indirect(20, 227, 208)),
    _model("xl330-m288", 1200, _ALL_MODES, 50, MotorSpec(0.52, 1.47, 103), 1.0, "docs/en/dxl/x/xl330-m288.md",
           {**_XL330, "Velocity_Limit": (445, None, 2047), "Velocity_I_Gain": (1600, None, None),
            "Velocity_P_Gain": (180, None, None), "Position_I_Gain": (0, None, None)},
           _current_registers(1750) + _PWM_SLOPE + _STARTUP + _indirect(20, 227, 208)),
    _model("xl430-w250", 1060, _NO_CURRENT_MODES, 111, MotorSpec(1.4, 1.3, 57), None, "docs/en/dxl/x/xl430-w250.md",
           {"Temperature_Limit": (72, None, None), "Max_Voltage_Limit": (140, 60, 140),
            "Min_Voltage_Limit": (60, 60, 140), "Velocity_Limit": (265, None, None),
            "Velocity_I_Gain": (1000, None, None), "Velocity_P_Gain": (100, None, None),
            "Position_D_Gain": (4000, None, None), "Position_I_Gain": (0, None, None),
            "Position_P_Gain": (640, None, None)},
           _LOAD_REGISTERS + _STARTUP + _indirect(56, 661, 224)),
    _model("xc430-w150", 1070, _NO_CURRENT_MODES, 120, MotorSpec(1.6, 1.4, 106), None, "docs/en/dxl/x/xc430-w150.md",
           {**_X430_12V, "Max_Voltage_Limit": (160, 60, 160), "Min_Voltage_Limit": (60, 60, 160),
            "Velocity_Limit": (460, None, None), "Position_P_Gain": (460, None, None)},
           _LOAD_REGISTERS + _indirect(56, 661, 224)),
    # Acceleration_Limit(40): on the XM430 pages of firmware before v42 (e.g. xm430-w350.md at commit 07fe860b),
    # and in LeRobot's X_SERIES_CONTROL_TABLE; the later pages dropped the row.
    _model("xm430-w210", 1030, _ALL_MODES, 120, MotorSpec(3.0, 2.3, 77), 2.69, "docs/en/dxl/x/xm430-w210.md",
           {**_X430_12V, "Velocity_Limit": (330, None, None)},
           _current_registers(1193) + [_r("Acceleration_Limit", 40, 4, "RW", 0, 32767, 32767)] + _indirect(56, 661, 224)),
    _model("xm430-w350", 1020, _ALL_MODES, 120, MotorSpec(4.1, 2.3, 46), 2.69, "docs/en/dxl/x/xm430-w350.md",
           {**_X430_12V, "Velocity_Limit": (200, None, None)},
           _current_registers(1193) + [_r("Acceleration_Limit", 40, 4, "RW", 0, 32767, 32767)] + _indirect(56, 661, 224)),
    _model("xm540-w270", 1120, _ALL_MODES, 120, MotorSpec(10.6, 4.4, 30), 2.69, "docs/en/dxl/x/xm540-w270.md",
           {**_X430_12V, "Drive_Mode": (None, None, 15), "Velocity_Limit": (128, None, None)},
           _current_registers(2047) + _indirect(56, 661, 224)
           + [_r(f"External_Port_Mode_{n}", 55 + n, 1, "RW", 0, 3, 3) for n in (1, 2, 3)]
           + [_r(f"External_Port_Data_{n}", 150 + 2 * n, 2, "RW", 0, 65535, 0) for n in (1, 2, 3)]),
)}
MODEL_BY_NUMBER = {m.number: m for m in MODELS.values()}

# The modes in which the servo follows Goal_Position (Operating Mode(11)); the others ignore it.
POSITION_MODES = ("position", "extended_position", "current_position")
# Baud Rate register value -> bits per second (X-series pages, Baud Rate(8); XL330 stops at 6, 4 Mbps).
BAUD_RATES = {0: 9_600, 1: 57_600, 2: 115_200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000,
              7: 4_500_000}
BAUD_CODES = {bps: code for code, bps in BAUD_RATES.items()}
FACTORY_ID, FACTORY_BAUDRATE = 1, 57_600  # every X-series servo leaves the factory so (ID(7), Baud Rate(8) initial)

# Hardware Error Status bits (control_table_shutdown.md).
HW_INPUT_VOLTAGE = 0x01
HW_OVERHEATING = 0x04
HW_ENCODER = 0x08
HW_ELECTRICAL_SHOCK = 0x10
HW_OVERLOAD = 0x20
HW_ERROR_NAMES = {HW_INPUT_VOLTAGE: "input voltage", HW_OVERHEATING: "overheating", HW_ENCODER: "motor encoder",
                  HW_ELECTRICAL_SHOCK: "electrical shock", HW_OVERLOAD: "overload"}

# Status packet ERR byte (protocol2.md, Status Packet / Error).
ERR_ALERT = 0x80
ERR_CODE = 0x7F  # bits 0..6: the error number below
ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC, ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = range(1, 8)
ERR_NAMES = {ERR_RESULT_FAIL: "result fail", ERR_INSTRUCTION: "instruction error", ERR_CRC: "CRC error",
             ERR_DATA_RANGE: "data range error", ERR_DATA_LENGTH: "data length error",
             ERR_DATA_LIMIT: "data limit error", ERR_ACCESS: "access error (EEPROM locked while torque is on?)"}


def describe_hw_error(bits: int) -> str:
    """'overload, overheating' for a Hardware Error Status value."""
    return ", ".join(name for bit, name in HW_ERROR_NAMES.items() if bits & bit) or "none"


def describe_startup(value: int) -> str:
    """'startup torque on, RAM restore' for a Startup_Configuration value."""
    names = {STARTUP_TORQUE_ON: "startup torque on", STARTUP_RAM_RESTORE: "RAM restore"}
    return ", ".join(name for bit, name in names.items() if value & bit) or "none"


def describe_status_error(err: int) -> str:
    """Human-readable status ERR byte."""
    parts = [ERR_NAMES.get(err & ERR_CODE, f"error {err & ERR_CODE}")] if err & ERR_CODE else []
    if err & ERR_ALERT:
        parts.append("hardware alert")
    return ", ".join(parts)


def model(name: str) -> Model:
    """The model called `name`, or a RequestError listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise RequestError(f"unknown Dynamixel model {name!r}; known: {', '.join(sorted(MODELS))}") from None
