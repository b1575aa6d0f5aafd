"""`edge run --record`: LeRobot's `lerobot-record` with a policy — N episodes with reset time between, recorded as
a LeRobot dataset v3.0.

Follows lerobot-record's control flow: each episode runs at the policy's rate for `episode_time_s` (→ ends it
early); then, unless recording stops or it was the last episode (and is not being re-recorded), `reset_time_s` of
reset (→ ends it early); an episode whose ← came during it or its reset is recorded again, otherwise it is saved;
Esc saves the current episode and stops. During reset, while an episode's video is flushed and while it is saved,
the arm holds: the loop keeps ticking with no action, so the last safe goal is re-sent (the Bus Watchdog needs a
write every `watchdog_ms`; with a policy and no teleoperator LeRobot sends nothing then), the safety layer keeps
watching, and nothing is recorded. On the control thread a tick only copies state and action into arrays sized
for the episode and hands each camera frame to its encoder's bounded queue (edge/robot/record/video.py).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from edge.errors import CLIError
from edge.robot.record.dataset import DatasetWriter, Episode
from edge.robot.record.keys import RecordEvents, TerminalKeys
from edge.robot.record.video import VCODECS, VideoStream
from edge.robot.control_loop import Executor, FrameHook, LoopConfig, LoopRobot, run_loop
from edge.robot.executors import StepResult
from edge.robot.telemetry import Telemetry, TickRecord

EVAL_PREFIX = "eval_"  # lerobot-record: "Dataset name must start with 'eval_'" when recording with a policy


@dataclass
class RecordOptions:
    """The `--record` options (LeRobot's `--dataset.*`: root, num_episodes, episode_time_s, reset_time_s,
    single_task, vcodec); defaults are LeRobot's."""

    root: Path
    task: str
    episodes: int = 50
    episode_time_s: float = 60.0
    reset_time_s: float = 60.0
    vcodec: str = "libsvtav1"
    robot_type: str | None = None


def check_task(task: str) -> str:
    """A task is one line of printable text (LeRobot's single_task: what the episodes show)."""
    if not task.strip() or not task.isprintable():
        raise CLIError(f"--task {task!r}: give the task as one line of text, e.g. --task 'Pick the cube'")
    return task.strip()


def check_recording(options: RecordOptions, hz: float, cameras: Mapping[str, Any]) -> int:
    """Everything that can refuse a recording, checked before the robot is connected; returns the dataset fps."""
    root = options.root
    if not root.name.startswith(EVAL_PREFIX):
        raise CLIError(f"--record {root}: a dataset recorded with a policy is named {EVAL_PREFIX}... "
                       f"(as lerobot-record requires), e.g. {root.with_name(EVAL_PREFIX + root.name)}")
    if root.exists() or root.is_symlink():
        raise CLIError(f"--record {root}: already exists; record into a new directory")
    parent = next((p for p in root.absolute().parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not _writable(parent):
        raise CLIError(f"--record {root}: cannot create it ({parent} is not a writable directory)")
    if hz != round(hz) or hz < 1:
        raise CLIError(f"--record needs a whole control rate (a LeRobot dataset's fps is an integer), got {hz:g} Hz")
    if not cameras:
        raise CLIError("--record: the robot has no cameras (the robot file's cameras:); an evaluation dataset "
                       "records what the policy saw")
    if options.vcodec not in VCODECS:
        raise CLIError(f"--vcodec {options.vcodec!r}: one of {', '.join(VCODECS)}")
    check_task(options.task)
    try:
        from edge.robot.record.dataset import import_pyarrow
        from edge.robot.record.video import import_av

        import_pyarrow()
        import_av()
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    return int(round(hz))


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK | os.X_OK)


class HoldExecutor:
    """No action on any tick: the robot re-sends its last safe goal (reset time, saving)."""

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        return StepResult(None, 0, None)


class EpisodeRecorder:
    """The per-tick hook of a recorded episode: state and action into preallocated rows, frames to the encoders."""

    def __init__(self, cameras: Mapping[str, tuple[int, int, int]], dim: int, fps: int, episode_time_s: float,
                 vcodec: str) -> None:
        rows = int(np.ceil(episode_time_s * fps)) + 1
        self.state = np.zeros((rows, dim), np.float32)
        self.action = np.zeros((rows, dim), np.float32)
        self.streams = {key: VideoStream(key, shape, fps, vcodec) for key, shape in cameras.items()}
        self.frames = 0

    def begin(self, directory: Path, episode: int) -> None:
        self.frames = 0
        for i, (key, stream) in enumerate(self.streams.items()):
            stream.start_episode(directory / f"episode-{episode:06d}-camera-{i}.mp4")

    def __call__(self, record: TickRecord, observation: Mapping[str, np.ndarray], goal: np.ndarray) -> None:
        i = self.frames
        if i >= len(self.state):
            return
        self.state[i] = record.present
        self.action[i] = goal if record.action is None else record.action
        for key, stream in self.streams.items():
            stream.push(i, observation[key])
        self.frames = i + 1

    def finish(self, task: str) -> Episode:
        """Flush the encoders (waits for them) and return the episode."""
        videos = {key: stream.finish(self.frames) for key, stream in self.streams.items()}
        for key, v in videos.items():
            if v.repeated:
                print(f"camera {key}: the encoder fell behind, {v.repeated} of {v.frames} frames repeat the one "
                      "before", file=sys.stderr)
        n = self.frames
        return Episode(self.state[:n].copy(), self.action[:n].copy(), videos, task)


class _Background:
    """A function run on a thread while the arm holds; `result()` re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(fn,), name="recording", daemon=True).start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self._error = exc
        finally:
            self.done.set()

    def result(self) -> Any:
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def record_episodes(robot: LoopRobot, executor: Executor, hz: float, telemetry: Telemetry,
                    on_tick: Callable[[TickRecord], None], options: RecordOptions, cameras: Mapping[str, tuple],
                    names: list[str], display: FrameHook | None = None) -> DatasetWriter:
    """Run and record the episodes (see the module docstring); returns the writer (what was saved)."""
    fps = int(round(hz))
    hold = HoldExecutor()
    writer = DatasetWriter(options.root, fps, options.robot_type, names, names, dict(cameras))
    recorder = EpisodeRecorder(cameras, len(names), fps, options.episode_time_s, options.vcodec)
    events = RecordEvents()

    def frame(record: TickRecord, observation: Mapping[str, np.ndarray], goal: np.ndarray) -> None:
        recorder(record, observation, goal)
        if display is not None:
            display(record, observation, goal)

    def hold_for(seconds: float | None, until: threading.Event) -> None:
        run_loop(robot, hold, LoopConfig(hz, seconds, stop=until), telemetry, on_tick=on_tick, on_frame=display)

    def say(text: str) -> None:
        sys.stderr.write(f"\n{text}\n")
        sys.stderr.flush()

    scratch = Path(tempfile.mkdtemp(prefix=".edge-record-", dir=options.root.absolute().parent))
    try:
        with TerminalKeys(events) as keys:
            say("keys: → end the episode early, ← re-record it, Esc stop recording" if keys.active else
                "no terminal on stdin: episodes run their full time (→ ← Esc need one)")
            recorded = 0
            while recorded < options.episodes and not events.stop_recording:
                say(f"Recording episode {writer.total_episodes}")
                reset = getattr(executor, "reset", None)
                if reset is not None:
                    reset()
                recorder.begin(scratch, writer.total_episodes)
                run_loop(robot, executor, LoopConfig(hz, options.episode_time_s, stop=events.exit_early), telemetry,
                         on_tick=on_tick, on_frame=frame)
                events.exit_early.clear()
                finished = _Background(lambda: recorder.finish(options.task))
                if not events.stop_recording and (recorded < options.episodes - 1 or events.rerecord_episode):
                    say("Reset the environment")
                    hold_for(options.reset_time_s, events.exit_early)
                    events.exit_early.clear()
                hold_for(None, finished.done)
                episode = finished.result()
                if events.rerecord_episode:
                    say("Re-record episode")
                    events.rerecord_episode = False
                    for v in episode.videos.values():
                        v.path.unlink(missing_ok=True)
                    continue
                saved = _Background(lambda: writer.add_episode(episode))
                hold_for(None, saved.done)
                saved.result()
                recorded += 1
                say(f"saved episode {writer.total_episodes - 1} ({len(episode.state)} frames) to {options.root}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if writer.total_episodes == 0:  # nothing kept: leave no dataset behind
            shutil.rmtree(options.root, ignore_errors=True)
    return writer
