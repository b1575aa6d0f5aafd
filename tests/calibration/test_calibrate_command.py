"""`edge calibrate` end to end on the servo emulator's pty: the command runs as the CLI runs it, its keyboard is a
pipe, and the test plays the user, moving the emulated joints by hand (torque off) between the prompts."""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from calib_lerobot_reference import lerobot_half_turn_homing

import firmware_bridge.bus
import firmware_bridge.emulator
from calibration import load_calibration
from calibration.procedure import run_calibration
from edge.cli import main
from edge.robot.robot_file import load_robot_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Reply slack against the emulator, whose Python thread a loaded 2-core machine can starve for several ms
# (the value firmware_bridge's own emulator tests use); real servos keep the bus default.
EMULATOR_SLACK_MS = 15.0
# Hand positions (encoder ticks, before homing) of ids 1..6 when the user centres the arm: within 1,024 ticks of
# mid-turn, since the example arm is in position mode (a servo there ignores larger homing offsets).
CENTRE = {1: 1300, 2: 2900, 3: 2048, 4: 1100, 5: 3000, 6: 1800}
SWEEP = {1: (-900, 800), 2: (-400, 1000), 3: (-1200, 1100), 4: (-300, 650), 5: (-50, 50), 6: (-10, 1200)}
CENTRE_PROMPT = "middle of its range of motion"
SWEEP_PROMPT = "whole range of motion"


class Screen(io.StringIO):
    """The terminal the command writes to (not a tty): the test waits on it for prompts."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            n = super().write(text)
            self.changed.notify_all()
        return n

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: text in self.getvalue(), timeout), \
                f"no {text!r} on screen:\n{self.getvalue()}"


class User:
    """Keyboard (a pipe) and hands (the emulator's joint positions)."""

    def __init__(self, emulator) -> None:
        self.emulator = emulator
        read_end, write_end = os.pipe()
        self.stdin = open(read_end)
        self.keys = open(write_end, "w")

    def enter(self) -> None:
        self.keys.write("\n")
        self.keys.flush()

    def hold(self, positions: dict[int, float]) -> None:
        """Put joints at `positions` and wait until the running command has polled them."""
        for servo_id, ticks in positions.items():
            self.emulator.set_shaft(servo_id, ticks)
        seen = self.emulator.instructions
        deadline = time.monotonic() + 10
        while self.emulator.instructions < seen + 2:  # a whole packet sent after the move
            assert time.monotonic() < deadline, "the command stopped polling positions"
            time.sleep(0.002)

    def close(self) -> None:
        for f in (self.keys, self.stdin):
            if not f.closed:
                f.close()


@pytest.fixture
def arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The example arm on an emulated chain, hands at CENTRE; yields (emulator, robot file path)."""
    data = yaml.safe_load((EXAMPLES / "robot.yaml").read_text())
    emulator = firmware_bridge.emulator.ServoEmulator({m["id"]: m["model"] for m in data["motors"]}, timing=False)
    data["port"] = emulator.start()
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    for servo_id, ticks in CENTRE.items():
        emulator.set_shaft(servo_id, ticks)
    monkeypatch.setattr(firmware_bridge.bus, "DynamixelBus",
                        functools.partial(firmware_bridge.bus.DynamixelBus, timeout_slack_ms=EMULATOR_SLACK_MS))
    try:
        yield emulator, path
    finally:
        emulator.stop()


def start_edge(argv: list[str], user: User, screen: Screen, monkeypatch: pytest.MonkeyPatch) -> threading.Thread:
    """`edge <argv>` on a thread with the user's keyboard and screen; the exit status lands in thread.status."""
    monkeypatch.setattr(sys, "stdin", user.stdin)
    monkeypatch.setattr(sys, "stdout", screen)
    thread = threading.Thread(target=lambda: setattr(thread, "status", main(argv)), daemon=True)
    thread.start()
    return thread


def finish(thread: threading.Thread) -> int:
    thread.join(30)
    assert not thread.is_alive(), "edge calibrate did not finish"
    return thread.status


def start_sweep(robot: Path, user: "User", screen: "Screen", monkeypatch) -> threading.Thread:
    """`edge calibrate` started, the centring step confirmed, waiting at the sweep prompt."""
    edge = start_edge(["calibrate", "--robot", str(robot)], user, screen, monkeypatch)
    screen.wait_for(CENTRE_PROMPT)
    user.enter()
    screen.wait_for(SWEEP_PROMPT)
    return edge


def test_interactive_calibration_then_check(arm, monkeypatch, capsys) -> None:
    emulator, robot = arm
    user, screen = User(emulator), Screen()
    try:
        edge = start_sweep(robot, user, screen, monkeypatch)
        for side in (0, 1):  # every joint to one end, then the other
            user.hold({i: CENTRE[i] + SWEEP[i][side] for i in CENTRE})
        user.hold(CENTRE)
        user.enter()
        status = finish(edge)
    finally:
        user.close()
    assert status == 0, capsys.readouterr().err
    assert "MOTOR" in screen.getvalue() and "Calibration written to the servos" in screen.getvalue()

    motors = yaml.safe_load(robot.read_text())["motors"]
    calib = load_calibration(robot.parent / "calibration.json")
    for motor in motors:
        c, servo_id = calib[motor["name"]], motor["id"]
        assert c.id == servo_id and c.drive_mode == 0
        assert c.homing_offset == lerobot_half_turn_homing(CENTRE[servo_id])
        expected = (0, 4095) if motor.get("full_turn") else (2047 + SWEEP[servo_id][0], 2047 + SWEEP[servo_id][1])
        assert (c.range_min, c.range_max) == expected, motor["name"]
        assert emulator.register(servo_id, "Homing_Offset") == c.homing_offset
        assert emulator.register(servo_id, "Min_Position_Limit") == c.range_min
        assert emulator.register(servo_id, "Max_Position_Limit") == c.range_max
        assert emulator.register(servo_id, "Torque_Enable") == 0
        assert emulator.register(servo_id, "Present_Position") == 2047  # the centred arm reads mid-turn

    monkeypatch.undo()  # back to capsys' streams
    monkeypatch.setattr(firmware_bridge.bus, "DynamixelBus",
                        functools.partial(firmware_bridge.bus.DynamixelBus, timeout_slack_ms=EMULATOR_SLACK_MS))
    capsys.readouterr()
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 0
    assert "servos match" in capsys.readouterr().out

    # The file drifts from the servos: --check names motor and field and exits 1.
    data = json.loads((robot.parent / "calibration.json").read_text())
    data["gripper"]["range_max"] -= 5
    data["elbow_flex"]["homing_offset"] += 1
    (robot.parent / "calibration.json").write_text(json.dumps(data, indent=4))
    assert main(["calibrate", "--robot", str(robot), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"gripper: Max_Position_Limit (range_max) file={calib['gripper'].range_max - 5} " \
           f"servo={calib['gripper'].range_max}" in out
    assert f"elbow_flex: Homing_Offset (homing_offset) file={calib['elbow_flex'].homing_offset + 1}" in out
    assert "2 difference(s)" in out


def test_closing_input_mid_sweep_restores_the_servos(arm, monkeypatch, capsys) -> None:
    emulator, robot = arm
    user, screen = User(emulator), Screen()
    try:
        edge = start_sweep(robot, user, screen, monkeypatch)
        assert emulator.register(6, "Homing_Offset") == lerobot_half_turn_homing(CENTRE[6])
        user.keys.close()  # Ctrl-D
        status = finish(edge)
    finally:
        user.close()
    assert status == 2
    assert "input closed while recording ranges; previous calibration restored" in capsys.readouterr().err
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


def test_reversed_servo_is_calibrated_in_its_own_ticks(arm) -> None:
    """A servo set to reverse (Drive_Mode bit 0) counts the other way inside one turn; the file records drive_mode 1."""
    emulator, robot_path = arm
    emulator.set_register(3, "Drive_Mode", 1)
    robot = load_robot_config(robot_path)
    bus = firmware_bridge.bus.DynamixelBus(robot.port, robot.bus_motors(), robot.baudrate)
    bus.connect()
    user, screen = User(emulator), Screen()
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(calib=run_calibration(bus, robot, user.stdin, screen, poll_s=0.005)))
    try:
        worker.start()
        screen.wait_for(CENTRE_PROMPT)
        user.enter()
        screen.wait_for(SWEEP_PROMPT)
        user.hold({i: CENTRE[i] + 300 for i in CENTRE})
        user.hold(CENTRE)
        user.enter()
        worker.join(30)
    finally:
        user.close()
        bus.disconnect()
    elbow, gripper = result["calib"]["elbow_flex"], result["calib"]["gripper"]
    assert elbow.drive_mode == 1
    assert elbow.homing_offset == lerobot_half_turn_homing((-CENTRE[3]) % 4096)
    assert (elbow.range_min, elbow.range_max) == (2047 - 300, 2047)  # +300 by hand reads -300
    assert gripper.drive_mode == 0 and (gripper.range_min, gripper.range_max) == (2047, 2047 + 300)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_mid_sweep_restores_the_servos_and_says_so(arm, sig) -> None:
    """SIGTERM (`kill`) or SIGHUP (the SSH session dropped) while the ranges are recorded: the `edge calibrate`
    process restores Homing_Offset and the limits it had half-written, says so, and exits 128 + the signal."""
    emulator, robot = arm
    before = {i: {r: emulator.register(i, r) for r in ("Homing_Offset", "Min_Position_Limit", "Max_Position_Limit")}
              for i in CENTRE}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "calibrate", "--robot", str(robot)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert CENTRE_PROMPT in proc.stdout.readline()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert SWEEP_PROMPT in proc.stdout.readline()
        assert emulator.register(6, "Homing_Offset") == lerobot_half_turn_homing(CENTRE[6])  # half-written
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "servos restored to their previous calibration" in out
    assert err.strip().splitlines()[-1] == f"interrupted (received {signal.Signals(sig).name})"
    assert "Traceback" not in err
    for servo_id, registers in before.items():
        assert {r: emulator.register(servo_id, r) for r in registers} == registers
        assert emulator.register(servo_id, "Torque_Enable") == 0
    assert not (robot.parent / "calibration.json").exists()
