"""`edge demo` and `edge report` as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge.robot.telemetry import load_telemetry


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout)


def test_demo_runs_and_writes_the_summary(tmp_path):
    summary, telemetry, outcome = tmp_path / "summary.json", tmp_path / "run.jsonl", tmp_path / "outcome.json"
    result = edge("demo", "--duration", "2", "--summary", str(summary), "--telemetry", str(telemetry),
                  "--outcome", str(outcome))
    assert result.returncode == 0, result.stderr
    data = json.loads(summary.read_text())
    assert data["ticks"] == 40 and abs(data["hz"] - 20) < 1  # the reach task's 20 Hz
    assert set(data["period_ms"]) == {"p1", "p50", "p99", "max"} and set(data["inference_ms"]) == {"p50", "p99"}
    assert "missed deadlines" in result.stdout and "target " in result.stdout
    assert set(data) == {"ticks", "hz", "period_ms", "inference_ms", "missed_deadlines", "bus_errors",
                         "safety_interventions", "out_of_distribution", "seams", "jerk_rms", "dropped",
                         "holding_share"}
    task = json.loads(outcome.read_text())
    assert task["policy"] == "act" and task["side"] in ("left", "right")
    meta, records = load_telemetry(telemetry)
    assert len(records) == 40 and meta["hz"] == 20 and meta["joints"][-1] == "gripper"

    pytest.importorskip("matplotlib")
    report = edge("report", str(telemetry), "--out", str(tmp_path / "plots"))
    assert report.returncode == 0, report.stderr
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["run_inference.png", "run_joints.png", "run_period.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    seams = sum(r["seam_jump"] is not None for r in records)
    assert seams > 0 and f"{seams} seam(s) marked" in report.stdout  # every chunk after the first starts a seam

    cut = tmp_path / "cut.jsonl"  # what a crash mid-write leaves: the last line without its end
    cut.write_bytes(telemetry.read_bytes()[:-30])
    report = edge("report", str(cut), "--out", str(tmp_path / "cut_plots"))
    assert report.returncode == 0, report.stderr
    assert f"skipped line {len(telemetry.read_text().splitlines())}, cut off" in report.stdout and len(list((tmp_path / "cut_plots").iterdir())) == 3


def test_run_with_a_bad_robot_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "robot.yaml"
    bad.write_text("port: /dev/null\n")
    result = edge("run", "--robot", str(bad), "--policy", "nowhere")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
