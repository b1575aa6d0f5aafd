"""The recording's encoder path without a robot: a tick whose frame did not fit in the full queue is filled with the
previous frame (the video keeps one frame per tick), and a tick's hook allocates nothing that stays when the
encoder is behind."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from robot_helpers import pattern

av = pytest.importorskip("av")

from edge.robot.record.episodes import EpisodeRecorder  # noqa: E402
from edge.robot.record.video import VideoStream  # noqa: E402
from edge.robot.telemetry import TickRecord  # noqa: E402

CAMERA = "observation.images.top"


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_frames_missing_from_the_queue_repeat_the_previous_one(tmp_path: Path) -> None:
    frames = [pattern(96, 128, seed=i) for i in range(8)]
    stream = VideoStream(CAMERA, (96, 128, 3), 30, "libsvtav1")
    stream.start_episode(tmp_path / "episode.mp4")
    for i in (0, 1, 2, 5, 6):  # ticks 3, 4 and 7 found the queue full
        stream.push(i, frames[i])
    encoded = stream.finish(8)
    assert (encoded.frames, encoded.repeated) == (8, 3)
    shown = decode(encoded.path)
    assert len(shown) == 8
    expected = [frames[i] for i in (0, 1, 2, 2, 2, 5, 6, 6)]
    errors = [[np.abs(s.astype(float) - e).mean() for e in frames] for s in shown]
    assert [int(np.argmin(row)) for row in errors] == [0, 1, 2, 2, 2, 5, 6, 6]
    assert max(np.abs(s.astype(float) - e).mean() for s, e in zip(shown, expected)) < 12.0


def test_the_tick_hook_keeps_nothing_when_the_encoder_is_behind(tmp_path: Path) -> None:
    """The encoder is not started, so its queue fills and every later frame is refused: the hook must not grow."""
    recorder = EpisodeRecorder({CAMERA: (96, 128, 3)}, 6, 30, episode_time_s=600.0, vcodec="libsvtav1")
    frame = pattern(96, 128, seed=0)
    frame.flags.writeable = False
    observation = {CAMERA: frame}
    state = np.zeros(6, np.float32)
    record = TickRecord(tick=0, t=0.0, deadline=0.0, period_ms=0.0, inference_ms=None, queue_depth=0, action=state,
                        goal=state, present=state, bus_errors=0, safety_interventions=0)
    for _ in range(200):  # fills the queue (60 ticks at 30 fps) and warms up
        recorder(record, observation, state)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(5000):
        recorder(record, observation, state)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert recorder.frames == 5200
    assert grown < 16 * 1024, after.compare_to(before, "lineno")[:5]
