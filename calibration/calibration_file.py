"""LeRobot-compatible joint calibration files: `{motor: {id, drive_mode, homing_offset, range_min, range_max}}`.

The JSON is byte-for-byte what LeRobot's `Robot._save_calibration` writes (draccus, indent 4, field order of
`MotorCalibration`), so a file made on the workstation by LeRobot and one made on the arm by `edge calibrate`
are interchangeable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from calibration.errors import CalibrationError
from calibration.strict_files import brief, brief_keys, read_json
from firmware_bridge import tables

# drive_mode holds the raw Drive_Mode register as LeRobot's read_calibration stores it: bit 0 is the direction,
# the other bits (time-based profile, torque on by goal update, ...) are kept and written back unchanged.
DRIVE_MODE_REVERSE = 0x01


class NormMode(str, Enum):
    """How a joint's ticks map to policy units; the values are LeRobot's `MotorNormMode` strings."""

    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"

    @property
    def unit(self) -> str:
        """The policy unit in words, for plots and tables: percent of the calibrated range, or degrees."""
        return {"range_0_100": "% of range, 0..100", "range_m100_100": "% of range, -100..100"}.get(self.value, "deg")


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, field for field LeRobot's `MotorCalibration` (raw servo ticks; drive_mode is the
    Drive_Mode register byte, whose bit 0 is the direction)."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def validate(self, motor: str, resolution: int = tables.TICKS_PER_TURN) -> None:
        """Raise CalibrationError naming `motor` and the field if a value cannot be a real X-series setting."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise CalibrationError(f"motor {brief(motor)}: {f.name} must be an integer, got {brief(value)}")
        if not 0 <= self.id <= tables.MAX_ID:
            raise CalibrationError(f"motor {brief(motor)}: id must be in 0..{tables.MAX_ID}, got {brief(self.id)}")
        if not 0 <= self.drive_mode <= 0xFF:
            raise CalibrationError(
                f"motor {brief(motor)}: drive_mode is the Drive_Mode register byte (0..255), got {brief(self.drive_mode)}")
        if abs(self.homing_offset) > tables.HOMING_OFFSET_LIMIT:
            raise CalibrationError(
                f"motor {brief(motor)}: homing_offset {brief(self.homing_offset)} outside ±{tables.HOMING_OFFSET_LIMIT}"
            )
        for name in ("range_min", "range_max"):
            if not 0 <= getattr(self, name) <= resolution - 1:
                raise CalibrationError(
                    f"motor {brief(motor)}: {name} must be in 0..{resolution - 1}, got {brief(getattr(self, name))}"
                )
        if self.range_min >= self.range_max:
            raise CalibrationError(
                f"motor {brief(motor)}: range_min ({brief(self.range_min)}) must be below range_max "
                f"({brief(self.range_max)})"
            )


def calibration_from_dict(data: Any, source: str = "calibration") -> dict[str, MotorCalibration]:
    """Parse the decoded JSON of a calibration file; errors name `source`, the motor and the field."""
    if not isinstance(data, dict) or not data:
        raise CalibrationError(f"{source}: expected a non-empty object {{motor: {{id, drive_mode, ...}}}}")
    expected = [f.name for f in fields(MotorCalibration)]
    result: dict[str, MotorCalibration] = {}
    for motor, entry in data.items():
        if not isinstance(entry, dict):
            raise CalibrationError(f"{source}: motor {brief(motor)}: expected an object, got {type(entry).__name__}")
        missing = [name for name in expected if name not in entry]
        if missing:
            raise CalibrationError(f"{source}: motor {brief(motor)}: missing field(s) {brief_keys(missing)}")
        unknown = sorted(set(entry) - set(expected))
        if unknown:
            raise CalibrationError(f"{source}: motor {brief(motor)}: unknown field(s) {brief_keys(unknown)}")
        calib = MotorCalibration(**{name: entry[name] for name in expected})
        try:
            calib.validate(motor)
        except CalibrationError as exc:
            raise CalibrationError(f"{source}: {exc}") from None
        result[motor] = calib
    return result


def calibration_to_json(calibration: Mapping[str, MotorCalibration]) -> str:
    """Serialise exactly as LeRobot does: a JSON object per motor, 4-space indent, no trailing newline."""
    return json.dumps({motor: asdict(c) for motor, c in calibration.items()}, indent=4)


def load_calibration(path: str | Path) -> dict[str, MotorCalibration]:
    """Read and validate a LeRobot calibration JSON file."""
    path = Path(path)
    data = read_json(path, CalibrationError, "calibration file")
    return calibration_from_dict(data, source=str(path))


def save_calibration(calibration: Mapping[str, MotorCalibration], path: str | Path) -> None:
    """Validate, then write the file atomically (a crash mid-write leaves the previous file intact)."""
    for motor, calib in calibration.items():
        calib.validate(motor)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(calibration_to_json(calibration), encoding="utf-8")
    tmp.replace(path)
