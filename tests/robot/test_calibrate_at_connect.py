"""`edge run` with no calibration file: on a terminal it calibrates at connect as LeRobot's connect(calibrate=True)
(the OMX's factory calibration is written without asking); not on a terminal it refuses naming the command."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.robot.robot_file import load_robot_config
from firmware_bridge.emulator import ServoEmulator

ROOT = Path(__file__).resolve().parents[2]
FEATURE = ("--feature", "observation.environment_state=0,0,0,0")


@pytest.fixture(scope="module")
def act_env(export_fixture) -> Path:  # noqa: ANN001
    return export_fixture("act_env")


@pytest.fixture
def omx():
    chain = {m.id: m.model for m in load_robot_config("omx", robot_id="x").motors}
    with ServoEmulator(chain) as emulator:
        yield emulator


def run_on_a_terminal(args: list[str], env: dict, timeout: float = 120, typed: bytes = b"") -> tuple[int, str]:
    """Run `edge` with stdin and stdout on a pty (a terminal), `typed` waiting in its input; collect what it prints."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "edge", *args], stdin=slave, stdout=slave,
                            stderr=subprocess.STDOUT, env=env, close_fds=True)
    os.close(slave)
    os.write(master, typed)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_omx_without_calibration_gets_the_factory_one_on_a_terminal(omx, act_env, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_LEROBOT_CALIBRATION": str(tmp_path)}
    status, out = run_on_a_terminal(["run", "--robot", "omx", "--id", "bench", "--port", omx.port, "--policy",
                                     str(act_env), *FEATURE, "--duration", "0.3", "--quiet", "--bus-slack-ms", "15"],
                                    env)
    assert status == 0, out
    path = tmp_path / "robots" / "omx_follower" / "bench.json"
    assert f"No calibration file for omx_follower 'bench' ({path}); every joint takes the full turn" in out
    assert "run complete" in out
    calibration = json.loads(path.read_text())
    assert all((c["homing_offset"], c["range_min"], c["range_max"], c["drive_mode"]) == (0, 0, 4095, 0)
               for c in calibration.values()) and [c["id"] for c in calibration.values()] == list(range(11, 17))
    assert all(omx.register(i, "Max_Position_Limit") == 4095 for i in range(11, 17))


def test_without_a_terminal_it_refuses_naming_the_command(omx, act_env, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_LEROBOT_CALIBRATION": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "--robot", "omx", "--id", "bench", "--port", omx.port,
                           "--policy", str(act_env), *FEATURE, "--duration", "0.3"], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert (f"no calibration file {tmp_path}/robots/omx_follower/bench.json: calibrate the arm first with "
            f"`edge calibrate --robot omx --id bench --port {omx.port}`") in proc.stderr
    assert not (tmp_path / "robots").exists()
    assert all(not s.writes for s in omx.servos.values())


def test_a_mismatch_on_a_terminal_offers_the_file_as_lerobots_koch_does(omx, act_env, tmp_path):
    """ENTER writes the file's calibration to the servos (LeRobot's "ENTER to use provided calibration file")."""
    path = tmp_path / "robots" / "omx_follower" / "bench.json"
    path.parent.mkdir(parents=True)
    calibration = {m.name: {"id": m.id, "drive_mode": 0, "homing_offset": 0, "range_min": 100, "range_max": 4000}
                   for m in load_robot_config("omx", robot_id="x").motors}
    path.write_text(json.dumps(calibration, indent=4))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_LEROBOT_CALIBRATION": str(tmp_path)}
    status, out = run_on_a_terminal(["run", "--robot", "omx", "--id", "bench", "--port", omx.port, "--policy",
                                     str(act_env), *FEATURE, "--duration", "0.3", "--quiet", "--bus-slack-ms", "15"],
                                    env, typed=b"\n")
    assert status == 0, out
    assert "Min_Position_Limit (range_min)" in out and "Press ENTER to write the calibration file's values" in out
    assert "run complete" in out
    assert all((omx.register(i, "Min_Position_Limit"), omx.register(i, "Max_Position_Limit")) == (100, 4000)
               for i in range(11, 17))
