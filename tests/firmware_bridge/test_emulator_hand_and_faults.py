"""The simulated hand (`edge emulate --hand`) and timed faults (`--fault ID:KIND@START[+DURATION]`), end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from firmware_bridge import tables
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.emulator import Hand, ServoEmulator, TimedFault
from tests.firmware_bridge.conftest import EMULATOR_SLACK_MS
from tests.firmware_bridge.lerobot_calls import KOCH_MODELS, KOCH_MOTORS, LeRobotCalls

REPO = Path(__file__).resolve().parents[2]
KOCH_CHAIN = ",".join(KOCH_MODELS[i] for i in sorted(KOCH_MODELS))


def start_emulate(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "edge", "emulate", "--no-timing", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    assert port.startswith("/dev/pts/"), proc.stderr.read()
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()


def test_hand_sweeps_torque_off_joints_only() -> None:
    with ServoEmulator({1: "xl430-w250", 2: "xl430-w250"}, timing=False, hand=Hand(period_s=0.4)) as emulator:
        with DynamixelBus(emulator.port, {"a": (1, "xl430-w250"), "b": (2, "xl430-w250")},
                          timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
            bus.write("Goal_Position", "b", bus.read("Present_Position", "b"))
            bus.enable_torque(["b"])  # it drives back to the goal the hand has moved it from, then holds
            time.sleep(0.3)
            held = bus.read("Present_Position", "b")
            seen = {"a": [], "b": []}
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                for name, value in bus.sync_read("Present_Position").items():
                    seen[name].append(value)
            assert max(seen["a"]) - min(seen["a"]) > 1500  # +-900 ticks around where it was taken
            assert set(seen["b"]) == {held}  # torque on: the hand cannot turn it


def test_lerobot_koch_calibration_completes_against_the_hand() -> None:
    """KochFollower.calibrate()'s bus calls: mode 4, half-turn homings, ranges recorded while the hand sweeps."""
    with ServoEmulator(KOCH_MODELS, timing=False, hand=Hand(period_s=0.6)) as emulator:
        lerobot = LeRobotCalls(emulator.port, dict(KOCH_MOTORS))
        try:
            for motor in KOCH_MOTORS:
                lerobot.write("Operating_Mode", motor, 4)
            homings = lerobot.set_half_turn_homings()
            swept = [m for m in KOCH_MOTORS if m not in ("shoulder_pan", "wrist_roll")]
            start = lerobot.sync_read("Present_Position", swept)
            mins, maxes = dict(start), dict(start)
            deadline = time.monotonic() + 0.8
            while time.monotonic() < deadline:  # record_ranges_of_motion until "Enter"
                for motor, value in lerobot.sync_read("Present_Position", swept).items():
                    mins[motor], maxes[motor] = min(mins[motor], value), max(maxes[motor], value)
            assert all(maxes[m] - mins[m] > 1500 for m in swept)
            assert all(0 <= mins[m] and maxes[m] <= 4095 for m in swept)  # homed mid-sweep, still one turn
            for motor in swept:
                lerobot.write("Homing_Offset", motor, homings[motor])
                lerobot.write("Min_Position_Limit", motor, mins[motor])
                lerobot.write("Max_Position_Limit", motor, maxes[motor])
            assert lerobot.read_calibration()["gripper"]["range_min"] == mins["gripper"]
        finally:
            lerobot.close()


def calibrate_interactively(*robot_args: str) -> subprocess.CompletedProcess:
    """`edge calibrate` answered as a user would: Enter at the middle pose, Enter after the hand's sweeps."""
    calibrate = subprocess.Popen([sys.executable, "-m", "edge", "calibrate", *robot_args], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "middle of its range" in calibrate.stdout.readline()
        calibrate.stdin.write("\n")
        calibrate.stdin.flush()
        assert "whole range of motion" in calibrate.stdout.readline()
        time.sleep(1.3)  # more than one back-and-forth of the hand
        out, err = calibrate.communicate("\n", timeout=30)
    finally:
        if calibrate.poll() is None:
            calibrate.kill()
    return subprocess.CompletedProcess(calibrate.args, calibrate.returncode, out, err)


def assert_swept(calibration_file: Path) -> None:
    """Every joint's recorded range spans most of the hand's sweep (wrist_roll: a full turn)."""
    calibration = yaml.safe_load(calibration_file.read_text())
    for name, entry in calibration.items():
        span = entry["range_max"] - entry["range_min"]
        assert span == 4095 if name == "wrist_roll" else span > 1500, name


def test_edge_calibrate_completes_against_edge_emulate_hand(tmp_path: Path) -> None:
    emulate, port = start_emulate("--model", KOCH_CHAIN, "--hand", "--hand-period", "1.0")
    try:
        robot = yaml.safe_load((REPO / "examples" / "robot.yaml").read_text())
        robot["port"] = port
        (tmp_path / "robot.yaml").write_text(yaml.safe_dump(robot))
        result = calibrate_interactively("--robot", str(tmp_path / "robot.yaml"))
        assert result.returncode == 0, result.stderr
        assert "Calibration written to the servos" in result.stdout
        assert_swept(tmp_path / "calibration.json")
    finally:
        stop(emulate)


def test_koch_preset_calibrates_against_edge_emulate_robot_koch_hand(tmp_path: Path) -> None:
    """Issue 14's end-to-end check: `edge calibrate --robot koch` completes against `edge emulate --robot koch
    --hand` (the preset's mixed XL430/XL330 chain), and `--check` then finds the servos matching the file."""
    emulate, port = start_emulate("--robot", "koch", "--hand", "--hand-period", "1.0")
    try:
        koch = ("--robot", "koch", "--port", port, "--calibration", str(tmp_path / "koch.json"))
        result = calibrate_interactively(*koch)
        assert result.returncode == 0, result.stderr
        assert "Calibration written to the servos" in result.stdout
        assert_swept(tmp_path / "koch.json")
        check = subprocess.run([sys.executable, "-m", "edge", "calibrate", *koch, "--check"], capture_output=True,
                               text=True, timeout=60)
        assert check.returncode == 0 and "servos match" in check.stdout, check.stdout + check.stderr
    finally:
        stop(emulate)


@pytest.mark.parametrize("text,message", [
    ("3:vanish", "expected ID:KIND@START"),
    ("3:explode@1", "unknown kind 'explode'"),
    ("3:delay@1", "delay needs milliseconds"),
    ("3:vanish:5@1", "vanish takes no :value"),
    ("3:vanish@1+0", "DURATION must be positive"),
])
def test_fault_specs_are_checked(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TimedFault.parse(text)


def test_timed_reply_faults_open_and_close_their_windows() -> None:
    faults = ["1:drop_reply@0.3+0.4", "2:corrupt_crc@0.3+0.4", "3:delay:40@0.3+0.4"]
    motors = {"a": (1, "xl430-w250"), "b": (2, "xl430-w250"), "c": (3, "xl430-w250")}
    with ServoEmulator({i: m for i, m in motors.values()}, timing=False, faults=faults) as emulator, \
            DynamixelBus(emulator.port, motors, retries=0, timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
        assert bus.sync_read("ID") == {"a": 1, "b": 2, "c": 3}
        time.sleep(0.35 - (time.monotonic() - emulator.started_at))
        for name, cause in (("a", "no reply"), ("b", "corrupt reply"), ("c", "no reply")):  # c: 40 ms late
            with pytest.raises(BusError, match=rf"\[{name}\]: {cause}"):
                bus.read("ID", name)
        time.sleep(0.75 - (time.monotonic() - emulator.started_at))
        assert bus.sync_read("ID") == {"a": 1, "b": 2, "c": 3}


def test_edge_emulate_fault_vanish_window_and_overload() -> None:
    emulate, port = start_emulate("--servos", "3", "--fault", "2:vanish@0.6+0.6", "--fault", "3:overload@0")
    try:
        bus = DynamixelBus(port, {"a": (1, "xl430-w250"), "b": (2, "xl430-w250"), "c": (3, "xl430-w250")},
                           timeout_slack_ms=EMULATOR_SLACK_MS)
        bus.connect()
        bus.write("Goal_Position", "c", bus.read("Present_Position", "c"))
        bus.enable_torque(["c"])  # holding against a load beyond its stall torque
        time.sleep(0.8)
        with pytest.raises(BusError, match=r"\[b\]"):
            bus.read("ID", "b")
        time.sleep(0.6)
        assert bus.read("ID", "b") == 2
        errors = bus.read("Hardware_Error_Status", "c")
        assert errors == tables.HW_OVERLOAD and bus.read("Torque_Enable", "c") == 0 and "c" in bus.alerts
        bus.reboot("c")
        assert bus.read("Hardware_Error_Status", "c") == 0
        bus.disconnect()
    finally:
        stop(emulate)


def test_edge_emulate_refuses_a_bad_fault_in_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "edge", "emulate", "--fault", "9:vanish@1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "fault on id 9: no such servo" in result.stderr


def test_timed_faults_count_from_the_first_connection() -> None:
    """`--fault 1:drop_reply@0.3`: 0.3 s after the host's first bytes, however long the emulator waited for them."""
    motors = {"a": (1, "xl430-w250")}
    with ServoEmulator({1: "xl430-w250"}, timing=False, faults=["1:drop_reply@0.3"]) as emulator:
        time.sleep(0.5)  # nobody connected yet: the clock has not started
        with DynamixelBus(emulator.port, motors, retries=0, timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
            connected = emulator.started_at
            assert bus.read("ID", "a") == 1
            time.sleep(max(0.0, 0.4 - (time.monotonic() - connected)))
            with pytest.raises(BusError, match=r"\[a\]: no reply"):
                bus.read("ID", "a")
