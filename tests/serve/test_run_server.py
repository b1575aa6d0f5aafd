"""`edge run --server` as a user runs it, on the pty servo emulator, against a real `edge serve` (or none).

The robot process blocks onnxruntime from being imported at all: with --server no graph runs on the robot.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from edge.robot.robot_file import load_robot_config
from edge.sim.emulated_arm import arm_files, hold_calibration
from firmware_bridge.emulator import ServoEmulator
from tests.serve.conftest import DATA, ROOT, Server, free_ports

ROBOT_SIDE = ("import sys; sys.modules['onnxruntime'] = None; "
              "from edge.cli import main; sys.exit(main(sys.argv[1:]))")
ENVIRONMENT = "observation.environment_state=0.1,0.0,0.2,0.3"


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[tuple[ServoEmulator, Path]]:
    with ServoEmulator({i: "xl430-w250" for i in range(1, 7)}) as emulator:
        robot = arm_files(tmp_path, emulator.port, hz=30.0)
        hold_calibration(emulator, load_robot_config(robot).bus)
        yield emulator, robot


def edge_run(robot: Path, package: Path, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ROBOT_SIDE, "run", "--robot", str(robot), "--policy", str(package),
                             "--server", url, "--feature", ENVIRONMENT, "--bus-slack-ms", "20", "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)



def actions(telemetry: Path) -> int:
    """Ticks so far that sent a policy goal (the last line may be half written)."""
    lines = telemetry.read_text().splitlines() if telemetry.exists() else []
    return sum(json.loads(line).get("action") is not None for line in lines[:-1])


def wait_for_actions(run: subprocess.Popen, telemetry: Path, n: int, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and run.poll() is None and actions(telemetry) < n:
        time.sleep(0.2)
    assert run.poll() is None, run.communicate()
    assert actions(telemetry) >= n, f"{actions(telemetry)} policy goals within {timeout} s, expected {n}"


def test_an_unreachable_server_is_refused_naming_the_address(client_module, arm):  # noqa: ANN001
    emulator, robot = arm
    url = f"grpc://127.0.0.1:{free_ports(1)[0]}"
    run = edge_run(robot, DATA / "demo_act", url, "--duration", "5")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2, err
    assert f"policy server {url} is not reachable" in err
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in range(1, 7))


def test_another_identity_is_refused_before_torque_on(server, arm, tampered_act):  # noqa: ANN001
    emulator, robot = arm
    run = edge_run(robot, tampered_act, server.url, "--duration", "5")
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2, err
    assert "answered for another package" in err
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in range(1, 7))


def test_killing_the_server_mid_run_is_a_safety_reaction(client_module, arm, tmp_path):  # noqa: ANN001
    emulator, robot = arm
    server = Server([DATA / "demo_act"])
    telemetry = tmp_path / "run.jsonl"
    timeout_ms = 500
    run = edge_run(robot, DATA / "demo_act", server.url, "--duration", "120", "--server-timeout-ms", str(timeout_ms),
                   "--telemetry", str(telemetry))
    try:
        wait_for_actions(run, telemetry, 30)  # chunks have driven the arm for a while
        server.kill()
        out, err = run.communicate(timeout=60)
    finally:
        server.stop()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, err
    waited = re.search(rf"policy server {re.escape(server.url)} gave no chunk for (\d+) ms", out + err)
    assert waited, out + err
    assert int(waited.group(1)) >= timeout_ms
    records = [r for line in telemetry.read_text().splitlines() if "tick" in (r := json.loads(line))]  # not the header
    assert records[-1]["action"] is None, (err[-3000:], records[-3:])  # no policy goal at or after the reaction
    assert "stopped by a safety reaction" in out


def test_a_server_restarted_within_the_timeout_is_reconnected_and_the_gap_held(client_module, arm, tmp_path):  # noqa: ANN001
    """SIGKILL `edge serve`, start it again on the same ports: the run goes on to its end (exit 0) once chunks come
    back, and the ticks without a chunk are counted as holding. (Not back within T: the kill test above, exit 3.)"""
    emulator, robot = arm
    server = Server([DATA / "demo_act"])
    telemetry = tmp_path / "run.jsonl"
    run = edge_run(robot, DATA / "demo_act", server.url, "--duration", "60", "--server-timeout-ms", "50000",
                   "--telemetry", str(telemetry))
    try:
        wait_for_actions(run, telemetry, 30)
        server.kill()
        before = actions(telemetry)
        server = Server([DATA / "demo_act"], ports=server.ports)  # ready within 180 s, else this raises
        wait_for_actions(run, telemetry, before + 30)  # chunks come again: reconnected without a restart of the run
        out, err = run.communicate(timeout=120)
    finally:
        server.stop()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    held = re.search(r"held the last goal (\d+) of \d+ policy ticks", out + err)
    assert held, out + err
    assert int(held.group(1)) >= 30, out + err  # the server was away for > 1 s (its restart) at 30 Hz
