"""`edge run` with a camera from the robot file, on the emulated arm: an image policy runs on real OpenCV frames,
a stalled camera trips the safety reaction (exit 3), and a camera of the wrong size is refused before anything
is written to a servo (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from robot_helpers import CAMERA, SLACK, decoded_frames, edge, edit_robot_file, pattern, servo_writes, write_video

import edge as edge_runtime
from edge.robot.drive import DriveOptions, drive
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import load_records
from firmware_bridge.safety import SafetyTripped

SUMMARY_KEYS = {"ticks", "hz", "period_ms", "inference_ms", "missed_deadlines", "bus_errors", "safety_interventions",
                "out_of_distribution", "seams", "jerk_rms", "dropped", "holding_share"}


def camera(source: Path | str, **extra: object) -> dict:
    return {CAMERA: {"type": "opencv", "source": str(source), "width": 128, "height": 96, **extra}}


def test_image_policy_runs_on_video_frames_and_matches_the_python_api(arm, act_cam, tmp_path: Path) -> None:
    emulator, robot = arm
    still = pattern(96, 128, seed=7)
    video = write_video(tmp_path / "top.avi", [still] * 10)
    edit_robot_file(robot, cameras=camera(video.name))  # relative to the robot file, like the calibration
    telemetry, summary = tmp_path / "run.jsonl", tmp_path / "summary.json"
    result = edge("run", "--robot", str(robot), "--policy", str(act_cam), "--duration", "1", "--quiet",
                  "--telemetry", str(telemetry), "--summary", str(summary), *SLACK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "run complete: torque off, port released"
    data = json.loads(summary.read_text())
    assert set(data) == SUMMARY_KEYS | {"frame_age_ms"} and set(data["frame_age_ms"]) == {CAMERA}
    records = load_records(telemetry)
    assert len(records) == data["ticks"] == 30
    ages = [r["frame_age_ms"][CAMERA] for r in records]
    assert data["frame_age_ms"][CAMERA]["max"] == pytest.approx(max(ages), abs=1e-3)
    assert 0 <= min(ages) and max(ages) < 100  # never older than the default 3 frame periods at 30 fps

    frame = decoded_frames(video)[0]  # every frame of the file is this still, as OpenCV decodes it
    policy = edge_runtime.load_policy(act_cam)
    policy.reset()
    for r in records:
        expected = policy.select_action({"observation.state": np.array(r["present"], np.float32), CAMERA: frame})
        np.testing.assert_allclose(r["action"], expected, rtol=1e-5, atol=1e-4)
    policy.reset()  # the frames mattered: another picture gives other actions
    other = policy.select_action({"observation.state": np.array(records[0]["present"], np.float32),
                                  CAMERA: pattern(96, 128, seed=8)})
    assert np.abs(other - np.array(records[0]["action"])).max() > 1e-3
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)


def stalling_camera(directory: Path, **extra: object) -> dict:
    """An image sequence at 30 fps; deleting its files makes it stop delivering."""
    for i in range(5):
        cv2.imwrite(str(directory / f"f_{i:03d}.jpg"), cv2.cvtColor(pattern(96, 128, seed=i), cv2.COLOR_RGB2BGR))
    return camera(directory / "f_%03d.jpg", fps=30, max_age_ms=150, **extra)


def test_stalled_camera_trips_the_reaction_which_holds_through_shutdown(arm, act_cam, tmp_path: Path) -> None:
    emulator, robot = arm
    frames = tmp_path / "frames"
    frames.mkdir()
    rest = {"shoulder_pan": 0.0, "shoulder_lift": -90.0, "elbow_flex": 90.0, "wrist_flex": 0.0, "wrist_roll": 0.0,
            "gripper": 5.0}
    edit_robot_file(robot, cameras=stalling_camera(frames), rest_pose=rest,
                    safety={"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": 200})
    telemetry = tmp_path / "run.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--robot", str(robot), "--policy", str(act_cam),
                             "--duration", "30", "--quiet", "--telemetry", str(telemetry), *SLACK],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while emulator.register(1, "Torque_Enable") == 0:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        time.sleep(0.5)
        for f in frames.iterdir():
            f.unlink()  # the camera stops delivering
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    closing = out.splitlines()[-1]
    assert closing.startswith("stopped by a safety reaction (hold")
    assert "camera observation.images.top: no new frame for" in closing
    assert (out + err).count("no new frame for") == 1  # the cause is said once: in the closing line

    records = load_records(telemetry)
    ages = [r["frame_age_ms"][CAMERA] for r in records]
    first = next(i for i, age in enumerate(ages) if age > 150)  # the fault opens at the first stale frame
    assert records[-1]["t"] - records[first]["t"] >= 0.2 - 0.005  # ... and the reaction waits out the window
    assert records[-2]["t"] - records[first]["t"] < 0.2 + 0.005  # at the first tick after it: then the run ends
    # hold stays in force through shutdown: torque on, no rest-pose motion (shoulder_lift would go to -90)
    time.sleep(0.3)  # the servos' Bus Watchdog fires once the process is gone
    assert all(emulator.register(i, "Torque_Enable") == 1 for i in emulator.servos)
    assert abs(emulator.register(2, "Present_Position") - 2048) < 200  # still where it ran, not at rest (~1150)


@pytest.mark.parametrize("case", ["declared", "delivered"])
def test_camera_of_the_wrong_size_is_refused_before_any_servo_write(arm, act_cam, tmp_path: Path, case: str) -> None:
    emulator, robot = arm
    if case == "declared":  # the robot file says 64x80, the policy takes 96x128
        video = write_video(tmp_path / "top.avi", [pattern(64, 80, seed=1)] * 3)
        edit_robot_file(robot, cameras={CAMERA: {"type": "opencv", "source": str(video), "width": 80, "height": 64}})
        message = r"camera observation.images.top delivers (64, 80, 3) frames, the policy's input expects (96, 128, 3)"
    else:  # the robot file matches the policy, the source does not
        video = write_video(tmp_path / "top.avi", [pattern(64, 80, seed=1)] * 3)
        edit_robot_file(robot, cameras=camera(video))
        message = "delivers (64, 80, 3) frames, expected (96, 128, 3)"
    result = edge("run", "--robot", str(robot), "--policy", str(act_cam), "--duration", "1", *SLACK)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert message in last and last.startswith("error: ") and "Traceback" not in result.stderr
    assert servo_writes(emulator) == {i: [] for i in emulator.servos}


def test_ctrl_c_after_the_reaction_still_ends_as_the_reaction(arm, act_cam, tmp_path: Path) -> None:
    """The Ctrl-C lands between the reaction and the end of the loop: the run still ends with SafetyTripped."""
    emulator, robot_file = arm
    frames = tmp_path / "frames"
    frames.mkdir()
    edit_robot_file(robot_file, cameras=stalling_camera(frames),
                    safety={"max_step_deg": 4.0, "error_window_s": 0.1, "reaction": "torque_off", "watchdog_ms": 200})
    robot = Robot(load_robot_config(robot_file), bus_timeout_slack_ms=15)
    policy = edge_runtime.load_policy(act_cam)
    interrupted: list[float] = []
    handler = signal.getsignal(signal.SIGINT)

    def on_tick(record) -> None:  # noqa: ANN001
        if record.tick == 5:
            for f in frames.iterdir():
                f.unlink()
        if robot.tripped is not None and not interrupted:
            interrupted.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)  # the safety layer's handler is still installed

    with pytest.raises(SafetyTripped, match="camera observation.images.top: no new frame"):
        drive(robot, policy, DriveOptions(hz=30, duration_s=20, status=False), on_tick=on_tick)
    assert interrupted and all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)
    assert signal.getsignal(signal.SIGINT) is handler  # the safety layer's handlers are gone again
