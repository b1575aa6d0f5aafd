"""Per-servo setup at connect (written torque-off, read back, nothing else touched), the Koch preset against
LeRobot's own configure(), the connect-time calibration check and --write-calibration, and `edge reboot`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from robot_helpers import SLACK, edge, servo_writes

from calibration import MotorCalibration, save_calibration
from edge.cli import main
from edge.errors import RobotConfigError
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config, robot_config_from_dict
from edge.sim.emulated_arm import hold_calibration
from firmware_bridge import tables
from firmware_bridge.emulator import ServoEmulator

REPO = Path(__file__).resolve().parents[2]
DEMO_ACT = REPO / "edge" / "data" / "demo_act"
PRESETS = REPO / "edge" / "data" / "robots"
TARGET = "observation.environment_state=0.1,0.6,0.05,-0.05"

# LeRobot 0.4.4, src/lerobot/robots/koch_follower/koch_follower.py: the motors in __init__ (ids, models) and what
# configure() writes: configure_motors() sets Return_Delay_Time 0 on every motor; Operating_Mode is
# OperatingMode.EXTENDED_POSITION (4) for every motor but the gripper, OperatingMode.CURRENT_POSITION (5) for the
# gripper; Position_P_Gain 1500, Position_I_Gain 0, Position_D_Gain 600 on elbow_flex. Transcribed from that file.
LEROBOT_KOCH_MOTORS = {"shoulder_pan": (1, "xl430-w250"), "shoulder_lift": (2, "xl430-w250"),
                       "elbow_flex": (3, "xl330-m288"), "wrist_flex": (4, "xl330-m288"),
                       "wrist_roll": (5, "xl330-m288"), "gripper": (6, "xl330-m288")}
LEROBOT_KOCH_CONFIGURE = {
    **{m: {"Return_Delay_Time": 0, "Operating_Mode": 4} for m in LEROBOT_KOCH_MOTORS},
    "gripper": {"Return_Delay_Time": 0, "Operating_Mode": 5},
    "elbow_flex": {"Return_Delay_Time": 0, "Operating_Mode": 4, "Position_P_Gain": 1500, "Position_I_Gain": 0,
                   "Position_D_Gain": 600},
}
UNTOUCHED = ("Drive_Mode", "Homing_Offset", "Min_Position_Limit", "Max_Position_Limit", "Velocity_Limit",
             "Temperature_Limit", "PWM_Limit", "Shutdown", "Secondary_ID", "Velocity_I_Gain", "Velocity_P_Gain",
             "Position_D_Gain", "Position_I_Gain", "Position_P_Gain", "Profile_Acceleration", "Profile_Velocity",
             "Current_Limit", "Operating_Mode", "Return_Delay_Time")


def koch_calibration(path: Path) -> Path:
    """A calibration for the Koch preset: LeRobot's full-turn joints (shoulder_pan, wrist_roll) 0..4095."""
    full = {"shoulder_pan", "wrist_roll"}
    save_calibration({m: MotorCalibration(i, 0, 0, *((0, 4095) if m in full else (1024, 3072)))
                      for m, (i, _) in LEROBOT_KOCH_MOTORS.items()}, path)
    return path


def registers(emulator: ServoEmulator) -> dict[int, dict[str, int]]:
    return {i: {r: s.get(r) for r in UNTOUCHED if r in s.regs} for i, s in emulator.servos.items()}


def test_koch_preset_reproduces_lerobot_configure_register_for_register(tmp_path: Path) -> None:
    preset = load_robot_config("koch")
    assert {m.name: (m.id, m.model) for m in preset.motors} == LEROBOT_KOCH_MOTORS
    with ServoEmulator({i: model for i, model in LEROBOT_KOCH_MOTORS.values()}, timing=False) as emulator:
        config = preset.with_overrides(port=emulator.port, calibration=koch_calibration(tmp_path / "koch.json"))
        hold_calibration(emulator, config.bus)
        before = registers(emulator)
        with Robot(config, bus_timeout_slack_ms=15) as robot:
            after = registers(emulator)
            for motor, (servo_id, _) in LEROBOT_KOCH_MOTORS.items():
                expected = {**before[servo_id], **LEROBOT_KOCH_CONFIGURE[motor]}
                assert after[servo_id] == expected, motor  # what LeRobot writes, and nothing else changed
                assert robot.buses[0].setup[motor] == LEROBOT_KOCH_CONFIGURE[motor]  # read back
            # Modes 4 and 5 ignore the servo's position limits: only the safety layer's software limits hold.
            assert sorted(robot.safety.software_limited) == sorted(LEROBOT_KOCH_MOTORS)
            assert "extended_position" in robot.describe() and "current_position" in robot.describe()
            robot.read()
            sent = robot.write(np.array([0, 0, 0, 0, 0, 100.0]))  # gripper to its closed end, 0..100 units
            assert sent[5] > 0
            time.sleep(0.05)
            assert emulator.register(6, "Goal_Position") == robot.safety._goal["gripper"]  # accepted in mode 5


def test_setup_registers_are_validated_on_load(tmp_path: Path) -> None:
    data = yaml.safe_load((PRESETS / "koch.yaml").read_text())
    cases = [
        ({"current_limit": 500}, 0, r"motors\[0\] \(shoulder_pan\).current_limit': xl430-w250 has no Current_Limit"),
        ({"operating_mode": "velocity"}, 2, "does not follow Goal_Position"),
        ({"operating_mode": "current"}, 0, "xl430-w250 has no current mode"),
        ({"position_p_gain": 20000}, 2, r"20000 outside 0..16383 \(Position_P_Gain\)"),
        ({"profile_velocity": -1}, 3, "outside 0..32767"),
        ({"return_delay_tme": 0}, 3, r"unknown field\(s\) 'motors\[3\] \(wrist_flex\).return_delay_tme'"),
    ]
    for change, index, message in cases:
        broken = json.loads(json.dumps(data))
        broken["motors"][index].update(change)
        with pytest.raises(RobotConfigError, match=message):
            robot_config_from_dict(broken, tmp_path)


def test_koch_preset_end_to_end_from_the_command_line(tmp_path: Path) -> None:
    """`edge emulate --robot koch` serves the chain; `edge run --robot koch --port ... --calibration ...
    --write-calibration` writes the file's calibration, sets the servos up and runs."""
    calibration = koch_calibration(tmp_path / "koch.json")
    emulate = subprocess.Popen([sys.executable, "-m", "edge", "emulate", "--robot", "koch", "--no-timing"],
                               stdout=subprocess.PIPE, text=True)
    try:
        port = emulate.stdout.readline().strip()
        assert port.startswith("/dev/")
        result = edge("run", "--robot", "koch", "--port", port, "--calibration", str(calibration), "--policy",
                      str(DEMO_ACT), "--feature", TARGET, "--duration", "0.5", "--quiet", "--write-calibration", *SLACK)
        assert result.returncode == 0, result.stderr
        assert "elbow_flex" in result.stderr and "Position_P_Gain=1500" in result.stderr
        assert "software limits only" in result.stderr
        emulate.send_signal(signal.SIGINT)
        assert emulate.wait(timeout=10) == 0
    finally:
        if emulate.poll() is None:
            emulate.kill()
        emulate.stdout.close()


def test_calibration_mismatch_is_refused_until_written(arm, tmp_path: Path) -> None:
    emulator, robot = arm
    emulator.servos[3].put("Homing_Offset", 100)  # the elbow was recalibrated elsewhere
    emulator.servos[6].put("Max_Position_Limit", 4095)
    args = ("run", "--robot", str(robot), "--policy", str(DEMO_ACT), "--feature", TARGET, "--duration", "0.3",
            "--quiet", *SLACK)
    result = edge(*args)
    assert result.returncode == 2
    table = result.stderr.splitlines()
    assert any(line.split() == ["elbow_flex", "Homing_Offset", "(homing_offset)", "0", "100"] for line in table), \
        result.stderr
    assert any(line.split() == ["gripper", "Max_Position_Limit", "(range_max)", "3072", "4095"] for line in table)
    last = table[-1]
    assert last.startswith("error: ") and "edge calibrate" in last and "--write-calibration" in last
    assert servo_writes(emulator) == {i: [] for i in emulator.servos}  # refused before anything was written

    result = edge(*args, "--write-calibration")
    assert result.returncode == 0, result.stderr
    assert emulator.register(3, "Homing_Offset") == 0 and emulator.register(6, "Max_Position_Limit") == 3072
    assert edge(*args).returncode == 0  # and now the plain run passes the check


def test_reboot_clears_an_injected_overload(arm, capsys) -> None:
    emulator, robot = arm
    emulator.hardware_error(3, tables.HW_OVERLOAD)
    assert emulator.register(3, "Torque_Enable") == 0 and emulator.register(3, "Hardware_Error_Status")
    assert main(["reboot", "--robot", str(robot)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["elbow_flex"].split()[1:] == ["overload", "none"]
    assert rows["gripper"].split()[1:] == ["none", "none"]
    assert emulator.register(3, "Hardware_Error_Status") == 0
    assert main(["reboot", "--robot", str(robot), "--joint", "elbw"]) == 2
    assert "--joint 'elbw' is not on this robot" in capsys.readouterr().err


def test_a_constant_feature_of_the_wrong_shape_is_refused_before_connecting(arm) -> None:
    emulator, robot = arm
    result = edge("run", "--robot", str(robot), "--policy", str(DEMO_ACT), "--duration", "0.3",
                  "--feature", "observation.environment_state=0.1,0.6", *SLACK)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("error: feature observation.environment_state has shape [2], the "
                                              "policy's input expects [4]")
    assert servo_writes(emulator) == {i: [] for i in emulator.servos}
