"""The interactive procedure against an in-memory bus that behaves like Dynamixel registers (no serial port)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
import yaml
from calib_lerobot_reference import lerobot_half_turn_homing

from calibration import CalibrationError, MotorCalibration, load_calibration
from edge.robot.robot_file import load_robot_config
from calibration.procedure import (
    CalibrationAborted,
    calibration_differences,
    read_servo_calibration,
    run_calibration,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class FakeBus:
    """Registers per motor; Present_Position = actual + Homing_Offset, as the servo computes it."""

    def __init__(self, names: list[str], actual: dict[str, int]) -> None:
        self.regs = {n: {"Homing_Offset": 0, "Min_Position_Limit": 0, "Max_Position_Limit": 4095,
                         "Drive_Mode": 0, "Operating_Mode": 3, "Torque_Enable": 1} for n in names}
        self.actual = dict(actual)
        self.sweep: list[dict[str, int]] = []  # actual positions served one per read after the homing read
        self.position_reads = 0
        self.swept = threading.Event()
        self.fail_on: str | None = None

    def disable_torque(self) -> None:
        for r in self.regs.values():
            r["Torque_Enable"] = 0

    def write(self, register: str, motor: str, value: int) -> None:
        if register == self.fail_on:
            raise CalibrationError(f"simulated failure writing {register}")
        assert self.regs[motor]["Torque_Enable"] == 0, "EEPROM written with torque on"
        self.regs[motor][register] = value

    def sync_read(self, register: str, motors: list[str] | None = None) -> dict[str, int]:
        motors = list(self.regs) if motors is None else motors
        if register == "Present_Position":
            self.position_reads += 1
            if self.position_reads == 1:
                pass  # the homing read sees the centred arm
            elif self.sweep:
                self.actual.update(self.sweep.pop(0))
            elif not self.swept.is_set():
                self.swept.set()
            return {n: self.actual[n] + self.regs[n]["Homing_Offset"] for n in motors}
        return {n: self.regs[n][register] for n in motors}


class GatedInput(io.StringIO):
    """stdin whose second line (the Enter that ends the sweep) waits until the sweep has been read."""

    def __init__(self, gate: threading.Event, lines: int = 2) -> None:
        super().__init__("\n" * lines)
        self.gate = gate
        self.calls = 0

    def readline(self, *args) -> str:  # type: ignore[override]
        self.calls += 1
        if self.calls == 2:
            assert self.gate.wait(10)
        return super().readline(*args)


@pytest.fixture
def robot(tmp_path: Path):
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    (tmp_path / "robot.yaml").write_text(yaml.safe_dump(data))
    return load_robot_config(tmp_path / "robot.yaml")


def centred_bus(robot) -> FakeBus:
    actual = {n: 1500 + 111 * i for i, n in enumerate(robot.motor_names)}
    bus = FakeBus(robot.motor_names, actual)
    # Pre-existing calibration on the servos, to check it is replaced (or restored on failure).
    for r in bus.regs.values():
        r.update(Homing_Offset=7, Min_Position_Limit=10, Max_Position_Limit=4000)
    return bus


def sweep_for(robot, bus: FakeBus) -> list[dict[str, int]]:
    """Move every non-full-turn joint 600 ticks down and 700 up from its centre (actual ticks)."""
    centre = dict(bus.actual)
    return [{n: centre[n] - 600 for n in robot.motor_names}, {n: centre[n] + 700 for n in robot.motor_names},
            centre]


def test_full_procedure_writes_lerobot_homing_and_ranges(robot) -> None:
    bus = centred_bus(robot)
    centre = dict(bus.actual)
    bus.sweep = sweep_for(robot, bus)
    out = io.StringIO()
    calib = run_calibration(bus, robot, GatedInput(bus.swept), out, poll_s=0.001)

    for m in robot.motors:
        c = calib[m.name]
        assert c.id == m.id and c.drive_mode == 0
        assert c.homing_offset == lerobot_half_turn_homing(centre[m.name])
        if m.full_turn:
            assert (c.range_min, c.range_max) == (0, 4095)
        else:
            assert (c.range_min, c.range_max) == (2047 - 600, 2047 + 700)
        assert bus.regs[m.name]["Homing_Offset"] == c.homing_offset
        assert bus.regs[m.name]["Min_Position_Limit"] == c.range_min
        assert bus.regs[m.name]["Max_Position_Limit"] == c.range_max
    assert load_calibration(robot.calibration) == calib
    assert calibration_differences(calib, read_servo_calibration(bus, robot)) == []
    text = out.getvalue()
    assert "press Enter" in text and "MOTOR" in text and "wrist_roll take the full" in text
    assert "\x1b[" not in text  # not a terminal: no cursor movement


def restored(bus: FakeBus) -> bool:
    return all((r["Homing_Offset"], r["Min_Position_Limit"], r["Max_Position_Limit"]) == (7, 10, 4000)
               for r in bus.regs.values())


def test_joint_that_never_moved_is_named_and_servos_restored(robot) -> None:
    bus = centred_bus(robot)
    bus.sweep = [dict(bus.actual), {n: v + (0 if n == "elbow_flex" else 300) for n, v in bus.actual.items()}]
    with pytest.raises(CalibrationError, match="elbow_flex did not move"):
        run_calibration(bus, robot, GatedInput(bus.swept), io.StringIO(), poll_s=0.001)
    assert restored(bus)
    assert not robot.calibration.exists()


def test_range_past_half_a_turn_from_centre_is_refused(robot) -> None:
    bus = centred_bus(robot)
    bus.sweep = sweep_for(robot, bus) + [{**bus.actual, "gripper": bus.actual["gripper"] + 2100}]
    with pytest.raises(CalibrationError, match="motor 'gripper': range_max must be in 0..4095"):
        run_calibration(bus, robot, GatedInput(bus.swept), io.StringIO(), poll_s=0.001)
    assert restored(bus)


def test_closed_input_aborts_without_writing(robot) -> None:
    bus = centred_bus(robot)
    with pytest.raises(CalibrationAborted, match="nothing was changed"):
        run_calibration(bus, robot, io.StringIO(""), io.StringIO())
    assert restored(bus)
    with pytest.raises(CalibrationAborted, match="previous calibration restored"):
        run_calibration(bus, robot, io.StringIO("\n"), io.StringIO(), poll_s=0.001)
    assert restored(bus)


def test_bus_failure_mid_write_restores(robot) -> None:
    bus = centred_bus(robot)
    bus.sweep = sweep_for(robot, bus)
    original = bus.write

    def write(register: str, motor: str, value: int) -> None:
        if register == "Max_Position_Limit" and motor == "gripper" and value != 4000 and value != 4095:
            raise CalibrationError("simulated bus failure")
        original(register, motor, value)

    bus.write = write  # type: ignore[method-assign]
    with pytest.raises(CalibrationError, match="simulated bus failure"):
        run_calibration(bus, robot, GatedInput(bus.swept), io.StringIO(), poll_s=0.001)
    assert restored(bus)


def test_differences_name_motor_and_register() -> None:
    a = {"gripper": MotorCalibration(6, 4, 10, 100, 200), "wrist_roll": MotorCalibration(5, 0, 0, 0, 4095)}
    b = {"gripper": MotorCalibration(6, 5, 10, 100, 250)}
    assert calibration_differences(a, b) == [
        "gripper: Drive_Mode (drive_mode) file=4 servo=5",  # the whole register, not just the reverse bit
        "gripper: Max_Position_Limit (range_max) file=200 servo=250",
        "wrist_roll: not on the servos",
    ]


def test_drive_mode_register_is_read_whole_and_kept(robot) -> None:
    """LeRobot's read_calibration stores the raw Drive_Mode (4: time-based profile); calibrating keeps it."""
    bus = centred_bus(robot)
    bus.regs["wrist_flex"]["Drive_Mode"] = 4
    bus.regs["gripper"]["Drive_Mode"] = 5
    assert read_servo_calibration(bus, robot)["wrist_flex"].drive_mode == 4
    bus.sweep = sweep_for(robot, bus)
    calib = run_calibration(bus, robot, GatedInput(bus.swept), io.StringIO(), poll_s=0.001)
    assert (calib["wrist_flex"].drive_mode, calib["gripper"].drive_mode) == (4, 5)
    assert (bus.regs["wrist_flex"]["Drive_Mode"], bus.regs["gripper"]["Drive_Mode"]) == (4, 5)


def test_position_mode_joint_centred_far_from_mid_turn_is_refused(robot) -> None:
    # e-manual, Homing Offset(20): in position mode an offset beyond +-1,024 is ignored by the servo.
    bus = centred_bus(robot)
    bus.actual["wrist_flex"] = 700  # half-turn homing would need +1347
    bus.regs["elbow_flex"]["Operating_Mode"] = 4
    bus.actual["elbow_flex"] = 3500  # -1453, but extended position mode applies any offset
    bus.sweep = sweep_for(robot, bus)
    with pytest.raises(CalibrationError, match=r"beyond \+-1024 for wrist_flex \(\+1347\)"):
        run_calibration(bus, robot, GatedInput(bus.swept), io.StringIO(), poll_s=0.001)
    assert restored(bus)
