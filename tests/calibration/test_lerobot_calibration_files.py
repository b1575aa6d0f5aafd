"""Calibration files LeRobot 0.4.4 itself wrote (../shared/fixtures/lerobot/calibration, README there says how):
each loads, round-trips byte for byte, and `edge calibrate --check` agrees with an emulated chain whose registers
were set from it, and names the joint and the register when one of them differs."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml

import firmware_bridge.bus
import firmware_bridge.emulator
from calibration import calibration_to_json, load_calibration, save_calibration
from edge.cli import main

FILES = ["doc_example.json", "full_turn.json", "koch_follower_calibrated_on_emulator.json", "odd.json",
         "read_calibration_drive_mode_4.json"]
# LeRobot's KochFollower motors (robots/koch_follower/koch_follower.py); the hand-set files name their motors
# <norm mode>_dm<drive mode> (see the fixtures' README) and are put on XL430-W250s here.
KOCH = {"shoulder_pan": "xl430-w250", "shoulder_lift": "xl430-w250", "elbow_flex": "xl330-m288",
        "wrist_flex": "xl330-m288", "wrist_roll": "xl330-m288", "gripper": "xl330-m288"}
NORM = {"m100": "range_m100_100", "p100": "range_0_100", "deg": "degrees"}
REGISTERS = {"drive_mode": "Drive_Mode", "homing_offset": "Homing_Offset", "range_min": "Min_Position_Limit",
             "range_max": "Max_Position_Limit"}


@pytest.fixture
def calibration_dir(lerobot_fixtures: Path) -> Path:
    return lerobot_fixtures / "calibration"


@pytest.mark.parametrize("name", FILES)
def test_lerobot_file_loads_and_round_trips_byte_for_byte(calibration_dir: Path, tmp_path: Path, name: str) -> None:
    text = (calibration_dir / name).read_text()
    calib = load_calibration(calibration_dir / name)
    assert calibration_to_json(calib) == text
    save_calibration(calib, tmp_path / name)
    assert (tmp_path / name).read_bytes() == (calibration_dir / name).read_bytes()


def test_drive_mode_4_is_kept_as_the_register_value(calibration_dir: Path) -> None:
    calib = load_calibration(calibration_dir / "read_calibration_drive_mode_4.json")
    assert calib["wrist_flex"].drive_mode == 4 and all(c.drive_mode == 0 for n, c in calib.items() if n != "wrist_flex")


def robot_for(calibration: dict, directory: Path, port: str) -> Path:
    """A robot file naming exactly the file's motors (ids, models, norm modes) and pointing at it."""
    motors = []
    for motor, entry in calibration.items():
        model = KOCH.get(motor, "xl430-w250")
        norm = ("range_0_100" if motor == "gripper" else "range_m100_100") if motor in KOCH \
            else NORM[motor.split("_")[0]]
        motors.append({"name": motor, "id": entry["id"], "model": model, "norm_mode": norm})
    robot = {"port": port, "baudrate": 1_000_000, "control_hz": 30, "calibration": "calibration.json",
             "motors": motors, "safety": {"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": 200},
             "features": {"state": "observation.state", "action": "action"}}
    (directory / "robot.yaml").write_text(yaml.safe_dump(robot, sort_keys=False))
    return directory / "robot.yaml"


@pytest.mark.parametrize("name", FILES)
def test_check_agrees_with_servos_set_from_the_file_and_names_a_differing_register(
        calibration_dir: Path, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    calibration = json.loads((calibration_dir / name).read_text())
    (tmp_path / "calibration.json").write_bytes((calibration_dir / name).read_bytes())
    monkeypatch.setattr(firmware_bridge.bus, "DynamixelBus",
                        functools.partial(firmware_bridge.bus.DynamixelBus, timeout_slack_ms=15.0))
    models = {e["id"]: KOCH.get(m, "xl430-w250") for m, e in calibration.items()}
    with firmware_bridge.emulator.ServoEmulator(models, timing=False) as emulator:
        robot = robot_for(calibration, tmp_path, emulator.port)
        for entry in calibration.values():
            for field, register in REGISTERS.items():
                emulator.set_register(entry["id"], register, entry[field])
        assert main(["calibrate", "--robot", str(robot), "--check"]) == 0
        assert "servos match" in capsys.readouterr().out

        motor, entry = list(calibration.items())[-2]
        for field, register in REGISTERS.items():
            changed = entry[field] + {"drive_mode": 4, "range_min": 1}.get(field, -1)
            emulator.set_register(entry["id"], register, changed)
            assert main(["calibrate", "--robot", str(robot), "--check"]) == 1
            out = capsys.readouterr().out
            assert f"{motor}: {register} ({field}) file={entry[field]} servo={changed}" in out
            assert "1 difference(s)" in out
            emulator.set_register(entry["id"], register, entry[field])
