"""`edge report` on the telemetry of a real run on the emulated arm with a fault injected mid-run: the meta line
names the joints and units, the markers fall where the fault was, and the three PNGs are written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from robot_helpers import edit_robot_file

import edge as edge_runtime
from edge.cli import main as edge_main
from edge.commands.report import events
from edge.robot.drive import DriveOptions, drive
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import load_telemetry

ENV = {"observation.environment_state": np.zeros(4, np.float32)}


@pytest.fixture(scope="module")
def act_env(export_fixture) -> Path:  # noqa: ANN001
    return export_fixture("act_env")


def test_report_of_a_run_with_a_fault(arm, act_env, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    emulator, robot_file = arm
    # a generous error window: on a loaded machine the lost replies must not add up to a reaction
    edit_robot_file(robot_file, safety={"max_step_deg": 4.0, "error_window_s": 2.0, "reaction": "hold",
                                        "watchdog_ms": 200})
    telemetry = tmp_path / "run.jsonl"
    fault_at = []

    def inject(record):  # noqa: ANN001
        if record.tick == 10:
            emulator.drop_replies(2, 3)  # three lost replies: the read fails after its retries, a bus error
            fault_at.append(record.t)

    with edge_runtime.load_policy(act_env) as policy:
        robot = Robot(load_robot_config(robot_file), static_features=ENV, bus_timeout_slack_ms=15.0)
        drive(robot, policy, DriveOptions(hz=30, duration_s=1.0, status=False, telemetry_path=telemetry),
              on_tick=inject)
    meta, records = load_telemetry(telemetry)
    assert meta["joints"] == robot.config.motor_names and meta["hz"] == 30
    assert meta["units"][0] == "% of range, -100..100" and meta["units"][-1] == "% of range, 0..100"
    marks = events(records)
    assert marks["fault"] and all(t > fault_at[0] for t in marks["fault"])  # after the injection, not before
    assert marks["reaction"] == []  # one failed read stays inside the error window
    assert marks["seam"] == [r["t"] for r in records if r["seam_jump"] is not None]  # each new chunk's first tick
    capsys.readouterr()
    assert edge_main(["report", str(telemetry), "--out", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["run_inference.png", "run_joints.png", "run_period.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
