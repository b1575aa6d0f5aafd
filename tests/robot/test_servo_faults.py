"""Faults the robot must not let through, run as a user runs them (`edge run` processes on the pty emulator, the
real dynamixel-sdk): a servo that resets mid-run, a second program on the port, output files that cannot be
written, SIGTERM / SIGHUP / SIGINT. Waits poll the emulator with a deadline; nothing asserts on wall-clock time."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robot_helpers import SLACK, edge, edit_robot_file, servo_writes

import edge as edge_runtime
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.emulator import ServoEmulator

DEMO_ACT = Path(edge_runtime.__file__).parent / "data" / "demo_act"
ENV = "observation.environment_state=0.1,0.6,0.05,-0.05"
RESET_ID, RESET_JOINT = 3, "elbow_flex"


def run_argv(robot: Path, *extra: str, duration: str = "30") -> list[str]:
    return [sys.executable, "-m", "edge", "run", "--robot", str(robot), "--policy", str(DEMO_ACT), "--quiet",
            "--duration", duration, "--feature", ENV, *SLACK, *extra]


def start_run(robot: Path, *extra: str, duration: str = "30") -> subprocess.Popen:
    return subprocess.Popen(run_argv(robot, *extra, duration=duration), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_torque(emulator: ServoEmulator, proc: subprocess.Popen) -> None:
    """Until every servo has torque on (the run is under way), failing if the process ended first."""
    deadline = time.monotonic() + 90
    while not all(emulator.register(i, "Torque_Enable") == 1 for i in emulator.servos):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def torque_settles(emulator: ServoEmulator, servos: list[int], on: bool) -> bool:
    """Whether `servos` reach torque `on`: the emulator's thread may still be catching up with the last packets a
    starved machine left in the pty after the process ended (polled until a deadline)."""
    deadline = time.monotonic() + 10
    while any(emulator.register(i, "Torque_Enable") != on for i in servos):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def power_cycle(emulator: ServoEmulator, servo_id: int) -> int:
    """A brown-out: the servo is off for ~30 ms, then back with factory RAM; returns its write-log length then."""
    emulator.power_off(servo_id)
    time.sleep(0.03)
    emulator.reappear(servo_id, power_cycled=True)
    return len(emulator.servos[servo_id].writes)


def goals_since(emulator: ServoEmulator, servo_id: int, index: int) -> list[int]:
    return [v for name, v in list(emulator.servos[servo_id].writes)[index:] if name == "Goal_Position"]


@pytest.mark.parametrize("reaction", ["hold", "torque_off"])
def test_a_servo_that_resets_mid_run_stops_the_run_naming_the_joint(arm, reaction: str) -> None:
    emulator, robot = arm
    edit_robot_file(robot, safety={"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": reaction,
                                   "watchdog_ms": 200})
    proc = start_run(robot)
    try:
        wait_for_torque(emulator, proc)
        time.sleep(0.3)
        powered_up = power_cycle(emulator, RESET_ID)
    finally:
        status, out, err = finish(proc)
    assert status == 3, err
    closing = out.splitlines()[-1]
    assert closing.startswith(f"stopped by a safety reaction ({reaction}") and f"servo reset: {RESET_JOINT}" in closing
    assert (out + err).count("servo reset") == 1  # the cause, once
    # at most the goal of the tick in flight when it came back; none after the read-back saw it limp
    assert len(goals_since(emulator, RESET_ID, powered_up)) <= 1
    assert emulator.register(RESET_ID, "Torque_Enable") == 0
    others = [i for i in emulator.servos if i != RESET_ID]
    assert torque_settles(emulator, others, on=reaction == "hold"), err
    if reaction == "hold":
        assert f"no torque on {RESET_JOINT}" in closing


def test_a_reset_hidden_by_startup_torque_is_caught_and_the_setting_cleared(arm) -> None:
    """Startup_Configuration bit 0 brings a reset servo back with torque on: connect clears it, and a servo that
    still comes back so (cleared Bus_Watchdog) is caught by the watchdog read-back."""
    emulator, robot = arm
    emulator.set_register(RESET_ID, "Startup_Configuration", 3)  # startup torque on + RAM restore, left by a user
    power_cycle(emulator, RESET_ID)
    assert emulator.register(RESET_ID, "Torque_Enable") == 1  # the emulator honours it at power-up
    proc = start_run(robot)
    try:
        wait_for_torque(emulator, proc)
        assert emulator.register(RESET_ID, "Startup_Configuration") == 0  # cleared at connect, torque off
        emulator.servos[RESET_ID].put("Startup_Configuration", 1)  # as if it had not been cleared (torque is on)
        power_cycle(emulator, RESET_ID)
    finally:
        status, out, err = finish(proc)
    assert status == 3, err
    assert "Startup_Configuration was 3" in err and "startup torque on, RAM restore" in err
    assert f"servo reset: {RESET_JOINT} read back Bus_Watchdog [0]" in out.splitlines()[-1]


def test_a_timed_reset_fault_is_a_power_loss_then_factory_ram() -> None:
    """`edge emulate --fault ID:reset@T`: at T the servo goes limp and silent for 30 ms, then answers with its RAM
    at factory values (torque off, Bus_Watchdog 0) while its EEPROM (Homing_Offset) is kept."""
    with ServoEmulator({1: "xl430-w250", 2: "xl430-w250"}, faults=["2:reset@0.5"]) as emulator:
        bus = DynamixelBus(emulator.port, {"a": (1, "xl430-w250"), "b": (2, "xl430-w250")}, timeout_slack_ms=15)
        bus.connect()
        try:
            bus.write("Homing_Offset", "b", 100)
            bus.enable_torque()
            bus.sync_write("Bus_Watchdog", {"a": 50, "b": 50})
            bus.sync_write("Goal_Position", bus.sync_read("Present_Position"))
            deadline = time.monotonic() + 30
            while emulator.register(2, "Torque_Enable") == 1:  # until the power goes (0.5 s after the start)
                assert time.monotonic() < deadline, "the reset never came"
                bus.sync_write("Goal_Position", bus.sync_read("Present_Position", ["a"]))  # feeds a's watchdog
                time.sleep(0.01)
            while True:  # back, as from power-up
                assert time.monotonic() < deadline, "the servo never came back"
                try:
                    bus.ping("b")
                    break
                except BusError:
                    pass
            assert bus.sync_read("Torque_Enable") == {"a": 1, "b": 0}
            assert bus.sync_read("Bus_Watchdog") == {"a": 50, "b": 0}
            assert bus.read("Homing_Offset", "b") == 100
        finally:
            bus.disconnect()


def test_a_second_program_on_the_port_is_refused_naming_the_holder(arm) -> None:
    emulator, robot = arm
    first = start_run(robot)
    try:
        wait_for_torque(emulator, first)
        logged = {i: len(s.writes) for i, s in emulator.servos.items()}
        second = subprocess.run(run_argv(robot, duration="1"), capture_output=True, text=True, timeout=120)
        check = edge("calibrate", "--robot", str(robot), "--check")
        assert all(emulator.register(i, "Torque_Enable") == 1 for i in emulator.servos)  # nobody turned it off
        foreign = {i: [name for name, _ in list(s.writes)[logged[i]:] if name not in ("Goal_Position", "Bus_Watchdog")]
                   for i, s in emulator.servos.items()}  # the first's own: goals, and its watchdog armed or re-armed
        first.send_signal(signal.SIGTERM)
    finally:
        status, out, err = finish(first)
    for result in (second, check):
        assert result.returncode == 2, result.stderr
        last = result.stderr.splitlines()[-1]
        assert emulator.port in last and f"pid {first.pid}" in last and "in use" in last
    assert foreign == {i: [] for i in emulator.servos}  # the refused programs wrote nothing
    assert status == 143, err
    assert out.splitlines()[-1] == "interrupted (received SIGTERM): torque off, port released"
    assert (out + err).count("received SIGTERM") == 1
    assert torque_settles(emulator, list(emulator.servos), on=False), err


def test_the_port_is_exclusive_to_plain_opens_too(arm) -> None:
    """TIOCEXCL: a program that opens the port without any lock (as dynamixel-sdk does) gets EBUSY; root is exempt,
    so the opener runs as nobody when the tests run as root."""
    emulator, _ = arm
    python = sys.executable if os.geteuid() != 0 else shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that an unprivileged user may run")
    demote = (lambda: (os.setgid(65534), os.setuid(65534))) if os.geteuid() == 0 else None
    plain_open = [python, "-c", f"import os; os.open({emulator.port!r}, os.O_RDWR | os.O_NOCTTY)"]
    os.chmod(emulator.port, 0o666)
    bus = DynamixelBus(emulator.port, {"a": (1, "xl430-w250")}, timeout_slack_ms=15)
    bus.connect()
    try:
        opener = subprocess.run(plain_open, capture_output=True, text=True, preexec_fn=demote, timeout=60)
    finally:
        bus.disconnect()
    assert opener.returncode != 0 and f"[Errno {errno.EBUSY}]" in opener.stderr, opener.stderr
    again = subprocess.run(plain_open, capture_output=True, text=True, preexec_fn=demote, timeout=60)
    assert again.returncode == 0, again.stderr  # released with the bus


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_sighup_and_sigint_end_the_run_in_order(arm, sig: int) -> None:
    emulator, robot = arm
    proc = start_run(robot)
    try:
        wait_for_torque(emulator, proc)
        proc.send_signal(sig)
    finally:
        status, out, err = finish(proc)
    name = signal.Signals(sig).name
    assert status == 128 + sig, err
    assert out.splitlines()[-1] == f"interrupted (received {name}): torque off, port released"
    assert (out + err).count(f"received {name}") == 1
    assert torque_settles(emulator, list(emulator.servos), on=False), err


@pytest.mark.parametrize("option", ["--summary", "--telemetry"])
@pytest.mark.parametrize("problem", ["missing folder", "a folder", "under a file"])
def test_an_output_that_cannot_be_written_is_refused_before_anything_moves(arm, tmp_path: Path, option: str,
                                                                           problem: str) -> None:
    emulator, robot = arm
    (tmp_path / "plain").write_text("x")
    path = {"missing folder": tmp_path / "results" / "run1.json", "a folder": tmp_path,
            "under a file": tmp_path / "plain" / "run1.json"}[problem]
    heard = emulator.instructions
    result = edge(*run_argv(robot, option, str(path), duration="1")[3:])
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: {option} {path}") and "Traceback" not in result.stderr
    assert emulator.instructions == heard and servo_writes(emulator) == {i: [] for i in emulator.servos}
    assert not (tmp_path / "results").exists()


def test_demo_and_eval_refuse_an_output_they_could_not_write_before_starting(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "out.json"
    result = edge("demo", "--outcome", str(missing), "--quiet")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: --outcome {missing}: folder")
    assert "starting an emulated" not in result.stdout
    result = edge("eval", "act", "--episodes", "1", "--json", str(missing), "--quiet")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: --json {missing}: folder")
    assert "evaluating" not in result.stderr


@pytest.mark.parametrize("ending", ["clean", "reset", "SIGTERM"])
def test_a_summary_lost_after_the_arm_moved_never_replaces_the_runs_status(arm, tmp_path: Path, ending: str) -> None:
    emulator, robot = arm
    results = tmp_path / "results"
    results.mkdir()
    summary = results / "run1.json"
    proc = start_run(robot, "--summary", str(summary), duration="4" if ending == "clean" else "30")
    try:
        wait_for_torque(emulator, proc)
        shutil.rmtree(results)  # the folder becomes a file while the arm moves: the summary cannot be written
        results.write_text("not a folder")
        if ending == "reset":
            power_cycle(emulator, RESET_ID)
        elif ending == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
    finally:
        status, out, err = finish(proc)
    assert status == {"clean": 4, "reset": 3, "SIGTERM": 143}[ending], err
    assert f"summary {summary} not written" in err
    closing = out.splitlines()[-1]
    assert closing.startswith({"clean": "run complete", "reset": "stopped by a safety reaction",
                               "SIGTERM": "interrupted (received SIGTERM)"}[ending])
    assert (out + err).count("not written") == 1
