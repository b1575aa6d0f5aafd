"""LeRobot calibration JSON: exact serialisation, round trips, and errors that name the motor and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration import CalibrationError, MotorCalibration, calibration_to_json, load_calibration, save_calibration

# What LeRobot 0.4.4's Robot._save_calibration writes for a Koch-style arm (draccus, indent=4).
LEROBOT_TEXT = """{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1017,
        "range_min": 776,
        "range_max": 3297
    },
    "gripper": {
        "id": 6,
        "drive_mode": 1,
        "homing_offset": 2,
        "range_min": 2031,
        "range_max": 3295
    }
}"""


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def good() -> dict:
    return json.loads(LEROBOT_TEXT)


def test_reads_lerobot_file_and_writes_it_back_byte_for_byte(tmp_path: Path) -> None:
    calib = load_calibration(write(tmp_path, LEROBOT_TEXT))
    assert list(calib) == ["shoulder_pan", "gripper"]
    assert calib["gripper"] == MotorCalibration(id=6, drive_mode=1, homing_offset=2, range_min=2031, range_max=3295)
    assert calibration_to_json(calib) == LEROBOT_TEXT
    out = tmp_path / "sub" / "again.json"
    save_calibration(calib, out)
    assert out.read_text() == LEROBOT_TEXT
    assert load_calibration(out) == calib


@pytest.mark.parametrize(
    "motor, field, value, message",
    [
        ("gripper", "range_min", 3295, "range_min (3295) must be below range_max (3295)"),
        ("gripper", "range_max", 5000, "range_max must be in 0..4095"),
        ("shoulder_pan", "id", "1", "id must be an integer"),
        ("shoulder_pan", "drive_mode", 256, "drive_mode is the Drive_Mode register byte (0..255), got 256"),
        ("shoulder_pan", "drive_mode", -1, "drive_mode is the Drive_Mode register byte (0..255), got -1"),
        ("shoulder_pan", "homing_offset", 1_046_000, "homing_offset 1046000 outside ±1044479"),
        ("shoulder_pan", "homing_offset", 2_000_000, "homing_offset 2000000 outside"),
        ("shoulder_pan", "range_min", 10.5, "range_min must be an integer"),
        ("shoulder_pan", "range_min", True, "range_min must be an integer"),
    ],
)
def test_bad_value_names_motor_and_field(tmp_path: Path, motor: str, field: str, value: object, message: str) -> None:
    data = good()
    data[motor][field] = value
    with pytest.raises(CalibrationError, match=f"motor '{motor}'") as err:
        load_calibration(write(tmp_path, data))
    assert message in str(err.value)


def test_missing_and_unknown_fields_are_named(tmp_path: Path) -> None:
    data = good()
    del data["gripper"]["homing_offset"]
    with pytest.raises(CalibrationError, match="motor 'gripper': missing field.*homing_offset"):
        load_calibration(write(tmp_path, data))
    data = good()
    data["gripper"]["offset"] = 3
    with pytest.raises(CalibrationError, match="motor 'gripper': unknown field.*offset"):
        load_calibration(write(tmp_path, data))


@pytest.mark.parametrize("text, message", [("{", "not valid JSON"), ("[]", "non-empty object"), ("{}", "non-empty object"),
                                           ('{"a": 3}', "motor 'a': expected an object")])
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        load_calibration(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="cannot read calibration file"):
        load_calibration(tmp_path / "nope.json")


def test_save_refuses_invalid_calibration_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = write(tmp_path, LEROBOT_TEXT)
    bad = {"gripper": MotorCalibration(6, 0, 0, 100, 50)}
    with pytest.raises(CalibrationError, match="motor 'gripper'"):
        save_calibration(bad, path)
    assert path.read_text() == LEROBOT_TEXT
