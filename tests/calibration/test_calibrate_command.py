"""`edge calibrate` end to end: a real `edge` process on the servo emulator's pty, keyboard input through a pipe,
the test moving the emulated joints by hand (torque off) between the prompts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from calib_lerobot_reference import lerobot_half_turn_homing

from calibration import load_calibration, load_robot_config
from calibration.procedure import run_calibration
from edge.cli import main

firmware_bridge = pytest.importorskip("firmware_bridge")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EDGE = [sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main())"]
# Hand positions (encoder ticks, before homing) of ids 1..6 when the user centres the arm.
CENTRE = {1: 1300, 2: 2900, 3: 2048, 4: 700, 5: 3000, 6: 1800}
SWEEP = {1: (-900, 800), 2: (-400, 1000), 3: (-1200, 1100), 4: (-300, 650), 5: (-50, 50), 6: (-10, 1200)}


@pytest.fixture
def arm(tmp_path: Path):
    """The example arm on an emulated chain; yields (emulator, robot file path)."""
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    emulator = firmware_bridge.ServoEmulator({m["id"]: m["model"] for m in data["motors"]})
    data["port"] = emulator.start()
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    for servo_id, ticks in CENTRE.items():
        emulator.servos[servo_id].position = float(ticks)
    try:
        yield emulator, path
    finally:
        emulator.stop()


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def settle(emulator) -> None:
    """Wait until the calibration loop has polled the chain again (two more instruction packets)."""
    seen = emulator.instructions
    wait_for(lambda: emulator.instructions >= seen + 2, "a position poll")


def start_edge(robot: Path) -> subprocess.Popen:
    return subprocess.Popen([*EDGE, "calibrate", "--robot", str(robot)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=robot.parent)


def read_until(stream, text: str) -> str:
    seen = ""
    while text not in seen:
        line = stream.readline()
        assert line, f"process ended before printing {text!r}; got:\n{seen}"
        seen += line
    return seen


def enter(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()


def homed(emulator) -> bool:
    return all(emulator.register(i, "Homing_Offset") == lerobot_half_turn_homing(t) for i, t in CENTRE.items())


def test_interactive_calibration_then_check(arm, capsys) -> None:
    emulator, robot = arm
    proc = start_edge(robot)
    try:
        read_until(proc.stdout, "middle of its range of motion")
        enter(proc)
        read_until(proc.stdout, "whole range of motion")
        wait_for(lambda: homed(emulator), "half-turn homing offsets")
        for side in (0, 1):  # sweep every joint to one end, then the other, by hand
            for servo_id, offsets in SWEEP.items():
                emulator.servos[servo_id].position = float(CENTRE[servo_id] + offsets[side])
            settle(emulator)
        for servo_id, ticks in CENTRE.items():
            emulator.servos[servo_id].position = float(ticks)
        settle(emulator)
        enter(proc)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "MOTOR" in out and "Calibration written to the servos" in out

    robot_data = yaml.safe_load(robot.read_text())
    calib = load_calibration(robot.parent / "calibration.json")
    for motor in robot_data["motors"]:
        c, servo_id = calib[motor["name"]], motor["id"]
        assert c.id == servo_id and c.drive_mode == 0
        assert c.homing_offset == lerobot_half_turn_homing(CENTRE[servo_id])
        expected = (0, 4095) if motor.get("full_turn") else (2047 + SWEEP[servo_id][0], 2047 + SWEEP[servo_id][1])
        assert (c.range_min, c.range_max) == expected, motor["name"]
        assert emulator.register(servo_id, "Homing_Offset") == c.homing_offset
        assert emulator.register(servo_id, "Min_Position_Limit") == c.range_min
        assert emulator.register(servo_id, "Max_Position_Limit") == c.range_max
        assert emulator.register(servo_id, "Torque_Enable") == 0
        # the centred arm now reads mid-turn, as LeRobot's half-turn homing intends
        assert emulator.register(servo_id, "Present_Position") == 2047

    capsys.readouterr()
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 0
    assert "servos match" in capsys.readouterr().out

    # Someone re-homes the gripper behind our back: --check names motor and field, exits 1.
    data = json.loads((robot.parent / "calibration.json").read_text())
    data["gripper"]["range_max"] -= 5
    data["elbow_flex"]["homing_offset"] += 1
    (robot.parent / "calibration.json").write_text(json.dumps(data, indent=4))
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"gripper: range_max file={calib['gripper'].range_max - 5} servo={calib['gripper'].range_max}" in out
    assert f"elbow_flex: homing_offset file={calib['elbow_flex'].homing_offset + 1}" in out
    assert "2 difference(s)" in out


def test_closing_input_mid_sweep_restores_the_servos(arm) -> None:
    emulator, robot = arm
    proc = start_edge(robot)
    try:
        read_until(proc.stdout, "middle of its range of motion")
        enter(proc)
        read_until(proc.stdout, "whole range of motion")
        wait_for(lambda: homed(emulator), "half-turn homing offsets")
        proc.stdin.close()
        proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert "input closed while recording ranges; previous calibration restored" in err
    for servo_id in CENTRE:
        assert emulator.register(servo_id, "Homing_Offset") == 0
        assert emulator.register(servo_id, "Max_Position_Limit") == 4095
    assert not (robot.parent / "calibration.json").exists()


def test_check_without_calibration_file_or_with_wrong_ids(arm, capsys) -> None:
    _, robot = arm
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 2
    assert "cannot read calibration file" in capsys.readouterr().err
    calib = json.loads((EXAMPLES / "calibration.json").read_text())
    calib["wrist_flex"]["id"] = 9
    (robot.parent / "calibration.json").write_text(json.dumps(calib))
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 2
    assert "motor 'wrist_flex': id 9 but the robot file says 4" in capsys.readouterr().err


def test_in_process_flow_records_reversed_servo_drive_mode(arm) -> None:
    """A servo set to reverse (Drive_Mode bit 0) is calibrated in its own reversed ticks; the file records it."""
    emulator, robot_path = arm
    emulator.servos[3].put("Drive_Mode", 1)
    robot = load_robot_config(robot_path)
    bus = firmware_bridge.DynamixelBus(robot.port, robot.bus_motors(), robot.baudrate)
    bus.connect()
    read_end, write_end = os.pipe()
    stdin = open(read_end)
    keys = open(write_end, "w")

    def user() -> None:
        keys.write("\n")
        keys.flush()
        wait_for(lambda: emulator.register(3, "Homing_Offset") != 0, "homing")
        settle(emulator)
        for servo_id in CENTRE:
            emulator.servos[servo_id].position += 300
        settle(emulator)
        keys.write("\n")
        keys.flush()

    thread = threading.Thread(target=user)
    thread.start()
    try:
        calib = run_calibration(bus, robot, stdin, io.StringIO(), poll_s=0.005)
    finally:
        thread.join()
        bus.disconnect()
        stdin.close()
        keys.close()
    elbow = calib["elbow_flex"]
    assert elbow.drive_mode == 1
    assert elbow.homing_offset == lerobot_half_turn_homing(-CENTRE[3])  # reversed: Present = -actual + offset
    assert (elbow.range_min, elbow.range_max) == (2047 - 300, 2047)     # moving +300 by hand reads -300
    assert calib["gripper"].drive_mode == 0 and (calib["gripper"].range_min, calib["gripper"].range_max) == (2047, 2347)
