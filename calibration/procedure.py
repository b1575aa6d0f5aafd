"""Interactive joint calibration on the servos, the way LeRobot calibrates a Dynamixel arm.

Torque off; the user centres the arm and presses Enter (half-turn homing: Homing_Offset makes every centred joint
read 2047); the user sweeps each joint while a live min/current/max table runs, Enter ends it; the limits go to
Min/Max_Position_Limit and the file. Streams and the bus are parameters, so tests drive it with a pipe and the
emulator. If anything fails after the first EEPROM write, the servos get their previous values back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol, Sequence, TextIO

from calibration.calibration_file import CalibrationError, MotorCalibration, save_calibration
from firmware_bridge import tables

CAL_FIELDS = ("homing_offset", "range_min", "range_max")
REGISTER_OF = {"drive_mode": "Drive_Mode", "homing_offset": "Homing_Offset", "range_min": "Min_Position_Limit",
               "range_max": "Max_Position_Limit"}
# In position mode a Homing_Offset beyond tables.POSITION_MODE_HOMING_LIMIT is ignored; LeRobot's Koch calibration
# switches to extended position mode before its half-turn homing.
POSITION_MODE = tables.OPERATING_MODES["position"]


class Bus(Protocol):
    """The part of firmware_bridge.DynamixelBus that calibration uses."""

    def disable_torque(self) -> None: ...

    def write(self, register: str, motor: str, value: int) -> None: ...

    def sync_read(self, register: str, motors: list[str] | None = None) -> dict[str, int]: ...


class Joint(Protocol):
    """What calibration reads of one servo in the robot file (edge's MotorConfig is one)."""

    @property
    def name(self) -> str: ...

    @property
    def id(self) -> int: ...

    @property
    def full_turn(self) -> bool: ...

    @property
    def resolution(self) -> int: ...


class Joints(Protocol):
    """What calibration reads of one bus in the robot file: its servos and calibration file (edge's BusConfig and
    single-bus RobotConfig are two). Typed here, not imported: the robot file lives on edge's floor, above this one."""

    @property
    def motors(self) -> Sequence[Joint]: ...

    @property
    def motor_names(self) -> list[str]: ...

    @property
    def calibration(self) -> Path | None: ...


class CalibrationAborted(CalibrationError):
    """The user did not finish (input closed or interrupted); the servos were restored."""


def read_servo_calibration(bus: Bus, robot: Joints) -> dict[str, MotorCalibration]:
    """What the servos hold now, as a calibration; drive_mode is the whole Drive_Mode register, as LeRobot's
    `read_calibration` stores it."""
    names = robot.motor_names
    regs = {f: bus.sync_read(REGISTER_OF[f], names) for f in ("drive_mode", *CAL_FIELDS)}
    return {m.name: MotorCalibration(m.id, *(int(regs[f][m.name]) for f in ("drive_mode", *CAL_FIELDS)))
            for m in robot.motors}


def write_servo_calibration(bus: Bus, calibration: dict[str, MotorCalibration]) -> None:
    """Write Homing_Offset and the position limits (EEPROM: torque is switched off first)."""
    bus.disable_torque()
    for motor, calib in calibration.items():
        for f in CAL_FIELDS:
            bus.write(REGISTER_OF[f], motor, getattr(calib, f))


def register_name(field: str) -> str:
    """`Max_Position_Limit (range_max)` for a calibration field that is a register, else the field."""
    return f"{REGISTER_OF[field]} ({field})" if field in REGISTER_OF else field


def calibration_mismatches(expected: dict[str, MotorCalibration],
                           actual: dict[str, MotorCalibration]) -> list[tuple[str, str, int, int | None]]:
    """(motor, field, file value, servo value) for every differing field; servo value None: not on the servos."""
    rows: list[tuple[str, str, int, int | None]] = []
    for motor, want in expected.items():
        have = actual.get(motor)
        for f in ("id", "drive_mode", *CAL_FIELDS):
            if have is None or getattr(want, f) != getattr(have, f):
                rows.append((motor, f, getattr(want, f), None if have is None else getattr(have, f)))
    return rows


def calibration_differences(expected: dict[str, MotorCalibration], actual: dict[str, MotorCalibration]) -> list[str]:
    """One line per differing motor register, e.g. `gripper: Max_Position_Limit (range_max) file=3295 servo=4095`;
    Drive_Mode is compared as a whole byte, as LeRobot's `is_calibrated` does."""
    lines = []
    for motor, f, file_value, servo_value in calibration_mismatches(expected, actual):
        if servo_value is None:
            if f"{motor}: not on the servos" not in lines:
                lines.append(f"{motor}: not on the servos")
            continue
        lines.append(f"{motor}: {register_name(f)} file={file_value} servo={servo_value}")
    return lines


class CalibrationMismatch(CalibrationError):
    """The servos' calibration registers differ from the calibration file; `table` lists joint / file / servo."""

    def __init__(self, source: str, rows: list[tuple[str, str, int, int | None]]) -> None:
        joints = list(dict.fromkeys(r[0] for r in rows))
        super().__init__(f"the servos do not hold the calibration in {source} ({len(rows)} difference(s) on "
                         f"{', '.join(joints)}); either run `edge calibrate` for this robot, or add "
                         f"--write-calibration to write the file's values to the servos (as LeRobot does)")
        self.rows = rows
        width = max([len("joint")] + [len(r[0]) for r in rows])
        self.table = "\n".join([f"{'joint':<{width}}  {'register':<32} {'file':>8} {'servo':>8}"] + [
            f"{motor:<{width}}  {register_name(f):<32} {file_value:>8} {'-' if servo_value is None else servo_value:>8}"
            for motor, f, file_value, servo_value in rows])


def check_servo_calibration(bus: Bus, robot: Joints, expected: dict[str, MotorCalibration]) -> None:
    """Raise CalibrationMismatch if the servos' Homing_Offset, Drive_Mode or position limits differ from `expected`
    (reads only: nothing is written)."""
    rows = calibration_mismatches(expected, read_servo_calibration(bus, robot))
    if rows:
        raise CalibrationMismatch(str(robot.calibration), rows)


def apply_file_calibration(bus: Bus, robot: Joints, calibration: dict[str, MotorCalibration]) -> None:
    """What `--write-calibration` does: the file's Drive_Mode, Homing_Offset and position limits to the servos
    (torque off), then read back; a servo that does not keep them is a CalibrationMismatch."""
    bus.disable_torque()
    for motor, calib in calibration.items():
        bus.write("Drive_Mode", motor, calib.drive_mode)
    write_servo_calibration(bus, calibration)
    check_servo_calibration(bus, robot, calibration)


def run_calibration(bus: Bus, robot: Joints, stdin: TextIO, stdout: TextIO,
                    poll_s: float = 0.05) -> dict[str, MotorCalibration]:
    """Run the interactive procedure, write the servos and the robot's calibration file, return the calibration.

    Either both end up with the new calibration or the servos are restored (a file that cannot be written
    counts as a failure).
    """
    names = robot.motor_names
    previous = read_servo_calibration(bus, robot)
    bus.disable_torque()
    stdout.write("Torque is off. Move the arm to the middle of its range of motion, then press Enter.\n")
    stdout.flush()
    _wait_for_enter(stdin)
    try:
        homing = _set_half_turn_homings(bus, robot)
        swept = [m.name for m in robot.motors if not m.full_turn]
        full = [m.name for m in robot.motors if m.full_turn]
        note = f" ({', '.join(full)} take the full 0..4095 turn)" if full else ""
        stdout.write(f"Move every joint through its whole range of motion{note}; press Enter when done.\n")
        mins, maxes = _record_ranges(bus, swept, stdin, stdout, poll_s)
        still = [n for n in swept if mins[n] == maxes[n]]
        if still:
            raise CalibrationError(f"motor(s) {', '.join(still)} did not move: no range recorded")
        for m in robot.motors:
            if m.full_turn:
                mins[m.name], maxes[m.name] = 0, m.resolution - 1
        new = {
            m.name: replace(previous[m.name], homing_offset=homing[m.name], range_min=mins[m.name],
                            range_max=maxes[m.name])
            for m in robot.motors
        }
        for m in robot.motors:
            new[m.name].validate(m.name, m.resolution)
        write_servo_calibration(bus, new)
        differences = calibration_differences(new, read_servo_calibration(bus, robot))
        if differences:
            raise CalibrationError("servos did not keep the calibration: " + "; ".join(differences))
        save_calibration(new, robot.calibration)
    except BaseException:  # an error, Ctrl-C, SIGTERM, SIGHUP: the servos get back what they held
        write_servo_calibration(bus, previous)
        stdout.write(f"servos restored to their previous calibration ({', '.join(names)}: Homing_Offset, "
                     "Min/Max_Position_Limit)\n")
        stdout.flush()
        raise
    stdout.write(f"Calibration written to the servos ({', '.join(names)}) and to {robot.calibration}\n")
    return new


def _set_half_turn_homings(bus: Bus, robot: Joints) -> dict[str, int]:
    """LeRobot's Dynamixel half-turn homing: clear offset and limits, then offset = 2047 - Present_Position.

    Present_Position already includes Homing_Offset on Dynamixel, so after this the centred arm reads 2047. A servo
    in position mode ignores an offset beyond +-1,024: such joints are refused, named (the caller restores the servos).
    """
    for m in robot.motors:
        bus.write("Homing_Offset", m.name, 0)
        bus.write("Min_Position_Limit", m.name, 0)
        bus.write("Max_Position_Limit", m.name, m.resolution - 1)
    present = bus.sync_read("Present_Position", robot.motor_names)
    homing = {m.name: (m.resolution - 1) // 2 - int(present[m.name]) for m in robot.motors}
    modes = bus.sync_read("Operating_Mode", robot.motor_names)
    limit = tables.POSITION_MODE_HOMING_LIMIT
    ignored = [f"{name} ({offset:+d})" for name, offset in homing.items()
               if modes[name] == POSITION_MODE and abs(offset) > limit]
    if ignored:
        raise CalibrationError(
            f"half-turn Homing_Offset beyond +-{limit} for {', '.join(ignored)}: a servo in "
            f"position mode (Operating_Mode 3) ignores it (e-manual, Homing Offset); centre those joints within "
            f"90 degrees of their encoder's mid-turn, or calibrate in extended position mode (Operating_Mode 4)")
    for name, offset in homing.items():
        bus.write("Homing_Offset", name, offset)
    return homing


def _record_ranges(bus: Bus, motors: list[str], stdin: TextIO, stdout: TextIO,
                   poll_s: float) -> tuple[dict[str, int], dict[str, int]]:
    """Track min/max Present_Position until Enter; a terminal gets a live table, a pipe gets changes only."""
    enter = _EnterListener(stdin)
    live = stdout.isatty()
    mins: dict[str, int] = {}
    maxes: dict[str, int] = {}
    shown = None
    while True:
        done = enter.pressed()  # sample before reading, so the last read still counts
        pos = bus.sync_read("Present_Position", motors) if motors else {}
        for n in motors:
            mins[n] = min(mins.get(n, pos[n]), pos[n])
            maxes[n] = max(maxes.get(n, pos[n]), pos[n])
        state = (tuple(mins.values()), tuple(maxes.values()))
        if live or state != shown:
            if live and shown is not None:
                stdout.write(f"\x1b[{len(motors) + 1}A")
            stdout.write(_table(motors, mins, pos, maxes))
            stdout.flush()
            shown = state
        if done:
            return mins, maxes
        time.sleep(poll_s)


def _table(motors: list[str], mins: dict[str, int], pos: dict[str, int], maxes: dict[str, int]) -> str:
    """The live min/current/max table."""
    rows = [f"{'MOTOR':<15} | {'MIN':>6} | {'POS':>6} | {'MAX':>6}"]
    rows += [f"{n:<15} | {mins[n]:>6} | {pos[n]:>6} | {maxes[n]:>6}" for n in motors]
    return "\n".join(rows) + "\n"


def _wait_for_enter(stdin: TextIO) -> None:
    """Block until a line arrives; closed input aborts."""
    if not stdin.readline():
        raise CalibrationAborted("input closed before Enter was pressed; nothing was changed")


class _EnterListener:
    """Reads one line on a background thread so the range table keeps updating while waiting for Enter."""

    def __init__(self, stdin: TextIO) -> None:
        self._line: list[str] = []
        self._event = threading.Event()
        threading.Thread(target=self._read, args=(stdin,), daemon=True).start()

    def _read(self, stdin: TextIO) -> None:
        self._line.append(stdin.readline())
        self._event.set()

    def pressed(self) -> bool:
        """True once a line came in; closed input raises CalibrationAborted."""
        if not self._event.is_set():
            return False
        if not self._line[0]:
            raise CalibrationAborted("input closed while recording ranges; previous calibration restored")
        return True
