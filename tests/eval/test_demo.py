"""`edge demo` on a reach-task package: the arm starts at the scene's start, the outcome is reported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from edge.robot.telemetry import load_records
from edge.sim import Scene, TaskConfig, render
from edge.sim.reach import joints_for
from edge.sim.rendered_camera import SimCamera
from edge.sim.tracker import ReachTracker

SCENE = Scene(start=np.array([0.0, -70.0]), target=np.array([0.0, 60.0]), obstacle=np.array([0.0, 0.0]))


def test_demo_starts_at_the_scene_and_reports_the_outcome(act_package, tmp_path):
    summary, telemetry, outcome = tmp_path / "s.json", tmp_path / "t.jsonl", tmp_path / "o.json"
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--package", str(act_package), "--seed", "3",
                             "--duration", "1", "--quiet", "--summary", str(summary), "--telemetry", str(telemetry),
                             "--outcome", str(outcome)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(summary.read_text())
    assert data["ticks"] == 20 and abs(data["hz"] - TaskConfig.hz) < 1
    first = load_records(telemetry)[0]["present"]
    start = np.array(json.loads(outcome.read_text())["scene"]["start"])
    np.testing.assert_allclose(first, joints_for(start), atol=0.2)  # one tick of 2048 over 200 units ≈ 0.1
    assert ("target reached" in result.stdout) or ("target not reached" in result.stdout)


def test_demo_feeds_an_image_policy_from_the_sim_camera(export_fixture, tmp_path):
    """LeRobot's vqbet_cam (state + 96x96 camera, no environment_state): frames come from SimCamera."""
    package = export_fixture("vqbet_cam")
    summary = tmp_path / "s.json"
    result = subprocess.run([sys.executable, "-m", "edge", "demo", "--package", str(package), "--duration", "0.5",
                             "--quiet", "--summary", str(summary)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cameras observation.images.top" in result.stderr
    assert json.loads(summary.read_text())["ticks"] == 10


def episode_outcome(scene: Scene, path: np.ndarray) -> dict:
    """The tracker fed a whole path, tick by tick, as the demo feeds it."""
    tracker = ReachTracker(scene)
    for point in path:
        tracker.update(point)
    return tracker.outcome()


def test_episode_outcome_from_paths():
    up = np.linspace(SCENE.start, SCENE.target, 50)
    left = np.concatenate([np.linspace(SCENE.start, [-40, 0], 30), np.linspace([-40, 0], SCENE.target, 30)])
    assert episode_outcome(SCENE, up)["collided"] and not episode_outcome(SCENE, up)["reached"]
    out = episode_outcome(SCENE, left)
    assert out["reached"] and out["side"] == "left" and out["ticks_to_target"] <= 60
    out = episode_outcome(SCENE, left * [-1, 1])
    assert out["reached"] and out["side"] == "right"
    assert not episode_outcome(SCENE, left[:20])["reached"]


def test_sim_camera_renders_the_present_tool_point():
    joints = [joints_for(np.array([-50.0, -50.0]))]
    cam = SimCamera("observation.images.top", SCENE, lambda: joints[0], size=48)
    frame, stamp = cam.latest()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, render(SCENE, np.array([-50.0, -50.0]), 48))
    joints[0] = joints_for(np.array([50.0, 50.0]))
    assert not np.array_equal(cam.latest()[0], frame)  # follows the arm
    assert cam.latest()[1] >= stamp  # rendered when asked: a fresh capture time
