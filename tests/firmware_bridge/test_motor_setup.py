"""`edge setup-motors` against factory-fresh emulated servos (ID 1, 57600 bps) over a real pty with the real
dynamixel-sdk: the user connects one motor at a time; two at once, the wrong model or none are refused unwritten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator
from firmware_bridge.motor_setup import MotorSetupError, find_single_servo, search_rates, setup_servo

from tests.firmware_bridge.conftest import EMULATOR_SLACK_MS

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 80.0  # the emulator answers at once; real servos get the SDK's whole broadcast window
MOTORS = [{"name": "elbow_flex", "id": 3, "model": "xl430-w250", "norm_mode": "range_m100_100"},
          {"name": "gripper", "id": 6, "model": "xl330-m288", "norm_mode": "range_0_100"}]


def only(emulator: ServoEmulator, slot: int | None) -> None:
    """Plug the controller board into one servo (slot), or into none."""
    for s in emulator.servos:
        emulator.reappear(s) if s == slot else emulator.vanish(s)


def factory_values(emulator: ServoEmulator) -> list[tuple[int, int]]:
    return [(emulator.register(s, "ID"), emulator.register(s, "Baud_Rate")) for s in emulator.servos]


def test_search_starts_at_the_factory_rate_then_the_bus_rate():
    assert search_rates("xl330-m288", 1_000_000)[:2] == [57_600, 1_000_000]
    assert 4_500_000 not in search_rates("xl330-m288", 1_000_000)  # the XL330 tops out at 4 Mbps (Baud_Rate <= 6)
    assert 4_500_000 in search_rates("xm430-w350", 1_000_000)


def test_a_factory_fresh_servo_gets_its_id_and_rate_read_back():
    with ServoEmulator.factory_fresh(["xl330-m288", "xl430-w250"], timing=False) as emulator:
        only(emulator, 1)
        found = setup_servo(emulator.port, "xl330-m288", 6, 1_000_000, slack_ms=EMULATOR_SLACK_MS, wait_ms=WAIT_MS)
        assert (found.id, found.baudrate, found.model_name) == (1, 57_600, "xl330-m288")
        assert factory_values(emulator) == [(6, tables.BAUD_CODES[1_000_000]), (1, 1)]
        with DynamixelBus(emulator.port, {"gripper": (6, "xl330-m288")}, 1_000_000,
                          timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
            assert bus.read("ID", "gripper") == 6
        # run again on the set-up servo: found at its new id and rate, nothing to change
        again = setup_servo(emulator.port, "xl330-m288", 6, 1_000_000, slack_ms=EMULATOR_SLACK_MS, wait_ms=WAIT_MS)
        assert (again.id, again.baudrate) == (6, 1_000_000)


def test_two_servos_on_id_1_are_more_than_one_motor_and_nothing_is_written():
    with ServoEmulator.factory_fresh(["xl330-m288", "xl330-m288"], timing=False) as emulator:
        with pytest.raises(MotorSetupError, match=r"more than one motor connected\? garbled replies at 57600 bps"):
            setup_servo(emulator.port, "xl330-m288", 6, 1_000_000, slack_ms=EMULATOR_SLACK_MS, wait_ms=WAIT_MS)
        assert factory_values(emulator) == [(1, 1), (1, 1)]


def test_two_servos_on_different_ids_are_refused_naming_both():
    with ServoEmulator({1: "xl330-m288", 5: "xl330-m288"}, baudrate=57_600, timing=False) as emulator:
        with pytest.raises(MotorSetupError, match="more than one motor connected.*2 servos answered.*id 1.*id 5"):
            find_single_servo(emulator.port, "xl330-m288", 1_000_000, wait_ms=WAIT_MS)


def test_the_wrong_model_is_named_and_refused():
    with ServoEmulator.factory_fresh(["xl330-m288", "xl430-w250"], timing=False) as emulator:
        only(emulator, 2)
        with pytest.raises(MotorSetupError, match=r"found a xl430-w250 \(id 1, 57600 bps\) but the robot file says "
                                                  r"xl330-m288"):
            setup_servo(emulator.port, "xl330-m288", 6, 1_000_000, wait_ms=WAIT_MS)
        only(emulator, None)
        with pytest.raises(MotorSetupError, match="no servo answered a PING .* is it connected and powered"):
            find_single_servo(emulator.port, "xl330-m288", 1_000_000, wait_ms=WAIT_MS)
        assert factory_values(emulator) == [(1, 1), (1, 1)]


def test_edge_setup_motors_end_to_end(tmp_path):
    """The command as the user runs it, gripper first, the test plugging in the motor each prompt names; then the
    chain answers at the robot file's ids and rate."""
    robot = {"port": "", "baudrate": 1_000_000, "control_hz": 30, "calibration": "c.json", "motors": MOTORS,
             "safety": {"max_step_deg": 5, "error_window_s": 0.5, "reaction": "hold", "watchdog_ms": None}}
    with ServoEmulator.factory_fresh(["xl430-w250", "xl330-m288"], timing=False) as emulator:
        robot["port"] = emulator.port
        (tmp_path / "robot.yaml").write_text(yaml.safe_dump(robot))
        only(emulator, None)
        proc = subprocess.Popen([sys.executable, "-m", "edge", "setup-motors", "--robot", str(tmp_path / "robot.yaml"),
                                 "--bus-slack-ms", str(EMULATOR_SLACK_MS)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            lines = []
            for slot, name in ((2, "gripper"), (1, "elbow_flex")):
                prompt = proc.stdout.readline()
                assert f"Connect the controller board to the '{name}' motor only" in prompt, prompt
                only(emulator, slot)
                proc.stdin.write("\n")
                proc.stdin.flush()
                lines.append(proc.stdout.readline())
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert "'gripper' motor id set to 6 at 1000000 bps (found xl330-m288 at id 1, 57600 bps" in lines[0]
        assert "'elbow_flex' motor id set to 3 at 1000000 bps (found xl430-w250 at id 1, 57600 bps" in lines[1]
        for slot in emulator.servos:
            emulator.reappear(slot)
        with DynamixelBus(emulator.port, {m["name"]: (m["id"], m["model"]) for m in MOTORS}, 1_000_000,
                          timeout_slack_ms=EMULATOR_SLACK_MS) as bus:  # connect pings both and checks models
            assert bus.sync_read("ID") == {"elbow_flex": 3, "gripper": 6}


def test_edge_emulate_factory_fresh_pair_collides_for_edge_setup_motors(tmp_path):
    emulate = subprocess.Popen([sys.executable, "-m", "edge", "emulate", "--factory-fresh", "--servos", "2",
                                "--model", "xl330-m288", "--no-timing"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        port = emulate.stdout.readline().strip()
        assert port.startswith("/dev/pts/"), emulate.stderr.read()
        assert "2 factory-fresh servo(s) (xl330-m288, xl330-m288), all at ID 1, 57600 bps" in emulate.stdout.readline()
        proc = subprocess.run([sys.executable, "-m", "edge", "setup-motors", "--robot", "koch", "--port", port,
                               "--motor", "gripper"], input="\n", capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        emulate.terminate()
        emulate.wait(timeout=10)
        emulate.stdout.close()
        emulate.stderr.close()
    assert proc.returncode == 2, proc.stderr
    assert "error: more than one motor connected? garbled replies at 57600 bps" in proc.stderr
    assert "nothing was written" in proc.stderr
