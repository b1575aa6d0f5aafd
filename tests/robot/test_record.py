"""`edge run --record` on the emulated arm with a real video-file camera, read back by LeRobot's own dataset code
(LeRobotDataset, video_backend="pyav", in its own venv): frames within the codec's tolerance of what the camera
delivered, states and actions exactly what the loop read and commanded (its telemetry), episode boundaries, tasks,
names. Bad recording options are refused before anything is written to a servo (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lerobot_venv import read_with_lerobot
from robot_helpers import CAMERA, SLACK, decoded_frames, edge, edit_robot_file, pattern, servo_writes, write_video

from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import load_records

pytest.importorskip("pyarrow")
pytest.importorskip("av")

# LeRobot's default codec (libsvtav1, crf 30, yuv420p) is lossy: a recorded frame is within this mean absolute
# error (8-bit levels) of the frame the camera delivered; the tests' frames differ from one another by ~50.
FRAME_TOLERANCE = 12.0
SOURCE_FRAMES = 30


def camera_video(tmp_path: Path) -> tuple[dict, list[np.ndarray]]:
    """A 30 fps video of 30 different pictures, and the frames OpenCV decodes from it (what the camera delivers)."""
    video = write_video(tmp_path / "top.avi", [pattern(96, 128, seed=i) for i in range(SOURCE_FRAMES)])
    return {CAMERA: {"type": "opencv", "source": video.name, "width": 128, "height": 96}}, decoded_frames(video)


def episodes_of(records: list[dict]) -> list[list[dict]]:
    """The recorded ticks, per episode: runs of ticks with a policy action (the reset and save ticks hold, no action;
    each episode's loop starts again at tick 0)."""
    episodes: list[list[dict]] = []
    previous = None
    for r in records:
        if r["action"] is not None:
            if previous is None or previous["action"] is None or r["tick"] == 0:
                episodes.append([])
            episodes[-1].append(r)
        previous = r
    return episodes


def match(frame: np.ndarray, sources: list[np.ndarray]) -> tuple[int, float, float]:
    """(index of the nearest source frame, its mean abs error, the second-nearest's)."""
    errors = sorted((float(np.abs(frame.astype(np.float64) - s).mean()), i) for i, s in enumerate(sources))
    return errors[0][1], errors[0][0], errors[1][0]


def test_recorded_episodes_read_back_by_lerobot(arm, act_cam, tmp_path: Path) -> None:
    emulator, robot = arm
    cameras, sources = camera_video(tmp_path)
    edit_robot_file(robot, cameras=cameras)
    root, telemetry = tmp_path / "eval_act_cam", tmp_path / "run.jsonl"
    result = edge("run", "--robot", str(robot), "--policy", str(act_cam), "--record", str(root), "--episodes", "2",
                  "--episode-time-s", "1", "--reset-time-s", "0.5", "--task", "Reach the target", "--quiet",
                  "--telemetry", str(telemetry), *SLACK, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no terminal on stdin" in result.stderr
    assert result.stderr.count("Reset the environment") == 1  # no reset after the last episode

    data = np.load(read_with_lerobot(root, tmp_path / "read.npz"))
    info = json.loads(str(data["info"]))
    ticks = episodes_of(load_records(telemetry))
    assert [len(e) for e in ticks] == [30, 30]  # 1 s at the robot file's 30 Hz
    assert info["fps"] == 30 and info["total_episodes"] == 2 and info["total_frames"] == 60
    names = load_robot_config(robot).position_names
    assert names[0] == "shoulder_pan.pos"
    assert info["features"]["observation.state"]["names"] == names == info["features"]["action"]["names"]
    assert info["video_keys"] == [CAMERA]
    assert info["features"][CAMERA]["info"]["video.codec"] == "av1"
    assert info["tasks"] == ["Reach the target"] * 60 and info["task_names"] == ["Reach the target"]
    np.testing.assert_array_equal(data["task_index"], 0)

    flat = [r for e in ticks for r in e]
    np.testing.assert_array_equal(data["observation.state"], np.array([r["present"] for r in flat], np.float32))
    np.testing.assert_array_equal(data["action"], np.array([r["action"] for r in flat], np.float32))
    np.testing.assert_array_equal(data["episode_index"], np.repeat([0, 1], 30))
    np.testing.assert_array_equal(data["frame_index"], np.tile(np.arange(30), 2))
    np.testing.assert_array_equal(data["index"], np.arange(60))
    np.testing.assert_allclose(data["timestamp"], np.tile(np.arange(30) / 30, 2), atol=1e-6)
    bounds = [(e["dataset_from_index"], e["dataset_to_index"], e["length"]) for e in info["episodes"]]
    assert bounds == [(0, 30, 30), (30, 60, 30)]
    assert info["episodes"][1][f"videos/{CAMERA}/from_timestamp"] == pytest.approx(1.0, abs=1e-3)
    assert set(info["stats_keys"]["observation.state"]) >= {"min", "max", "mean", "std", "count", "q01", "q99"}
    np.testing.assert_allclose(info["state_mean"], data["observation.state"].mean(0), rtol=1e-5, atol=1e-4)

    frames = (np.transpose(data[CAMERA], (0, 2, 3, 1)) * 255).round()  # LeRobot gives float CHW in [0, 1]
    assert frames.shape == (60, 96, 128, 3)
    for episode in (frames[:30], frames[30:]):
        seen = []
        for frame in episode:
            index, error, second = match(frame, sources)
            assert error < FRAME_TOLERANCE and second > 2 * FRAME_TOLERANCE, (index, error, second)
            seen.append(index)
        steps = np.diff(seen) % SOURCE_FRAMES  # the camera plays the file forward, looping (a busy machine skips some)
        assert max(steps) < SOURCE_FRAMES // 4 and len(set(seen)) > 10, seen
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)


@pytest.mark.parametrize("change, args, message", [
    ("existing", ("--task", "t"), "already exists"),
    ("name", ("--task", "t"), "named eval_"),
    ("no camera", ("--task", "t"), "no cameras"),
    ("task", ("--task", "  "), "--task"),
    ("none", (), "--record needs --task"),
])
def test_bad_recording_is_refused_before_torque_on(arm, act_cam, tmp_path: Path, change: str, args: tuple,
                                                   message: str) -> None:
    emulator, robot = arm
    cameras, _ = camera_video(tmp_path)
    edit_robot_file(robot, cameras={} if change == "no camera" else cameras)
    root = tmp_path / ("act" if change == "name" else "eval_act")
    if change == "existing":
        root.mkdir()
    before = servo_writes(emulator)
    result = edge("run", "--robot", str(robot), "--policy", str(act_cam), "--record", str(root), *args, *SLACK)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert servo_writes(emulator) == before
    assert root.exists() == (change == "existing") and list(tmp_path.glob(".edge-record-*")) == []


def test_terminal_keys_rerecord_end_early_and_stop(arm, act_cam, tmp_path: Path) -> None:
    """← re-records, → ends an episode or a reset early, Esc saves the episode and stops: keys typed on a real
    terminal (a pty as stdin), as over SSH."""
    import os
    import pty
    import subprocess
    import sys
    import termios

    from edge.robot.record.keys import ESCAPE, LEFT, RIGHT

    emulator, robot = arm
    cameras, _ = camera_video(tmp_path)
    edit_robot_file(robot, cameras=cameras)
    root = tmp_path / "eval_keys"
    master, slave = pty.openpty()
    settings = termios.tcgetattr(slave)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--robot", str(robot), "--policy", str(act_cam),
                             "--record", str(root), "--episodes", "5", "--episode-time-s", "60", "--reset-time-s",
                             "60", "--task", "keys", "--quiet", *SLACK], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    said: list[str] = []

    def wait_for(text: str) -> None:
        for line in proc.stderr:
            said.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} never came: {''.join(said)}")

    try:
        wait_for("keys: → end the episode early")
        for expect, key in (("Recording episode 0", LEFT), ("Reset the environment", RIGHT),
                            ("Recording episode 0", RIGHT), ("Reset the environment", RIGHT),
                            ("Recording episode 1", ESCAPE)):
            wait_for(expect)
            os.write(master, key)
        proc.wait(timeout=120)
        said.extend(proc.stderr)
        restored = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 0, "".join(said)
    log = "".join(said)
    assert log.index("Left arrow") < log.index("Re-record episode") < log.index("saved episode 0")
    assert "Escape key pressed" in log and "saved episode 1" in log and "Recording episode 2" not in log
    assert restored == settings  # the terminal is given back as it was (cbreak undone)
    os.close(slave)
    import pyarrow.parquet as pq

    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    info = json.loads((root / "meta/info.json").read_text())
    assert [e["episode_index"] for e in episodes] == [0, 1] and info["total_episodes"] == 2
    assert all(0 < e["length"] < 60 * 30 for e in episodes)  # both ended early
    assert info["total_frames"] == sum(e["length"] for e in episodes)
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)


def test_split_keys_and_events() -> None:
    from edge.robot.record.keys import ESCAPE, LEFT, RIGHT, RecordEvents, split_keys

    assert split_keys(b"a\x1b[C\x1b[Dx") == [b"a", RIGHT, LEFT, b"x"]
    assert split_keys(b"\x1b") == [ESCAPE]
    events = RecordEvents()
    assert events.key(b"a") is None and not events.exit_early.is_set()
    events.key(LEFT)
    assert events.rerecord_episode and events.exit_early.is_set() and not events.stop_recording
    events.key(ESCAPE)
    assert events.stop_recording


def test_image_statistics_from_histograms_match_numpy() -> None:
    from edge.robot.record.stats import histogram_stats

    pixels = np.random.default_rng(3).integers(0, 256, (5, 20, 30, 3), dtype=np.uint8)
    histogram = np.stack([np.bincount(pixels[..., c].ravel(), minlength=256) for c in range(3)])
    stats = histogram_stats(histogram, 5)
    values = pixels.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(stats["mean"].ravel(), values.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"].ravel(), values.std(0), rtol=1e-9)
    np.testing.assert_array_equal(stats["min"].ravel(), values.min(0))
    np.testing.assert_array_equal(stats["max"].ravel(), values.max(0))
    np.testing.assert_array_equal(stats["q50"].ravel(), np.quantile(values, 0.5, axis=0, method="inverted_cdf"))
    assert stats["mean"].shape == (3, 1, 1) and stats["count"].tolist() == [5]


@pytest.mark.parametrize("args, message", [
    (("--record", "eval_x", "--task", "t", "--episodes", "0"), "--episodes: must be an integer >= 1, got 0"),
    (("--record", "eval_x", "--task", "t", "--episode-time-s", "nan"), "--episode-time-s: must be a finite number, got 'nan'"),
    (("--record", "eval_x", "--task", "t", "--reset-time-s", "-1"), "--reset-time-s: must be >= 0, got -1"),
    (("--display", "--display-port", "70000"), "--display-port: must be an integer in 1..65535, got 70000"),
    (("--episodes", "3",), "--episodes only apply with --record DIR"),
    (("--record", "eval_x", "--task", "t", "--duration", "5"), "--duration does not apply with --record"),
    (("--display-ip", "10.0.0.2",), "only apply with --display"),
])
def test_recording_options_are_checked_before_anything_opens(tmp_path: Path, args: tuple, message: str) -> None:
    result = edge("run", "--robot", "koch", "--policy", str(tmp_path / "missing"), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
