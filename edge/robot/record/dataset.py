"""A LeRobot dataset v3.0 on disk, written episode by episode with pyarrow (no torch, no pandas, no datasets).

The layout and keys are LeRobot's (lerobot/datasets/utils.py and lerobot_dataset.py, codebase v3.0):
data/chunk-XXX/file-XXX.parquet (the frames of many episodes), videos/<key>/chunk-XXX/file-XXX.mp4 (one stream
per camera, many episodes one after another), meta/info.json (features with names, fps, codec), meta/stats.json,
meta/tasks.parquet (task text as the pandas index, `task_index`), meta/episodes/chunk-XXX/file-XXX.parquet (one row
per episode: its tasks, length, where its frames and video segments lie, its statistics). A file takes episodes
until it would pass `data_files_size_in_mb` / `video_files_size_in_mb`, then the next file index begins (a chunk
holds `chunks_size` files). After every episode each file is rewritten whole and renamed into place, so the
dataset on disk is complete and readable between episodes; an episode that was not kept leaves no trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.robot.record.stats import aggregate, histogram_stats, to_json, vector_stats
from edge.robot.record.video import EncodedEpisode, append_video, video_info
from edge.runtime.files import write_atomic_with

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILE_SIZE_IN_MB = 100
VIDEO_FILE_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")  # LeRobot's DEFAULT_FEATURES


def import_pyarrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, or an ImportError saying how to get them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("recording needs pyarrow and PyAV: pip install 'edge-policy-runtime[record]'") from None
    return pa, pq


@dataclass
class Episode:
    """One kept episode: per-frame state and action (frames, dim), its camera videos, its task."""

    state: np.ndarray
    action: np.ndarray
    videos: dict[str, EncodedEpisode]
    task: str


@dataclass
class _FileCursor:
    """Where the next episode of one stream (data, or one camera's video) goes."""

    chunk: int = 0
    file: int = 0
    used: bool = False  # the current file holds at least one episode

    def path(self, root: Path, template: str, **keys: str) -> Path:
        return root / template.format(chunk_index=self.chunk, file_index=self.file, **keys)

    def place(self, current: Path, adding_bytes: int, limit_mb: int) -> None:
        """Move on to the next file if adding `adding_bytes` to the current one would pass the limit."""
        if self.used and current.exists() and current.stat().st_size + adding_bytes >= limit_mb * 1024 * 1024:
            self.file += 1
            if self.file >= CHUNKS_SIZE:
                self.chunk, self.file = self.chunk + 1, 0
            self.used = False


@dataclass
class DatasetWriter:
    """Creates `root` (which must not exist) and appends episodes to it."""

    root: Path
    fps: int
    robot_type: str | None
    state_names: list[str]
    action_names: list[str]
    cameras: dict[str, tuple[int, int, int]]  # feature key -> (H, W, 3)
    features: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        import_pyarrow()
        self.features = {
            "action": {"dtype": "float32", "shape": [len(self.action_names)], "names": list(self.action_names)},
            "observation.state": {"dtype": "float32", "shape": [len(self.state_names)],
                                  "names": list(self.state_names)},
            **{key: {"dtype": "video", "shape": list(shape), "names": ["height", "width", "channels"], "info": None}
               for key, shape in self.cameras.items()},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            **{name: {"dtype": "int64", "shape": [1], "names": None} for name in INDEX_FEATURES[1:]},
        }
        self.episodes: list[dict[str, Any]] = []  # the meta/episodes rows
        self.episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.tasks: dict[str, int] = {}
        self.total_frames = 0
        self._data = _FileCursor()
        self._videos = {key: _FileCursor() for key in self.cameras}
        self.root.mkdir(parents=True)
        self._write_info()

    @property
    def total_episodes(self) -> int:
        return len(self.episodes)

    def add_episode(self, episode: Episode) -> int:
        """Append one episode to the data, video and meta files; returns its episode_index."""
        index = self.total_episodes
        frames = len(episode.state)
        task_index = self.tasks.setdefault(episode.task, len(self.tasks))
        columns = {
            "action": np.asarray(episode.action, np.float32), "observation.state": np.asarray(episode.state, np.float32),
            "timestamp": (np.arange(frames) / self.fps).astype(np.float32),
            "frame_index": np.arange(frames, dtype=np.int64), "episode_index": np.full(frames, index, np.int64),
            "index": np.arange(self.total_frames, self.total_frames + frames, dtype=np.int64),
            "task_index": np.full(frames, task_index, np.int64),
        }
        row: dict[str, Any] = {"episode_index": index, "tasks": [episode.task], "length": frames}
        row.update(self._append_data(columns))
        for key, encoded in episode.videos.items():
            if encoded.frames != frames:
                raise RuntimeError(f"camera {key}: {encoded.frames} video frames for {frames} ticks")
            row.update(self._append_video(key, encoded))
        stats = {name: vector_stats(values) for name, values in columns.items()}
        stats.update({key: histogram_stats(v.histogram, v.frames) for key, v in episode.videos.items()})
        stats = {name: stats[name] for name in self.features}
        for name, s in stats.items():
            for k, v in s.items():
                row[f"stats/{name}/{k}"] = np.asarray(v).tolist()
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        self.total_frames += frames
        self.episodes.append(row)
        self.episode_stats.append(stats)
        self._write_meta()
        return index

    def _append_data(self, columns: dict[str, np.ndarray]) -> dict[str, Any]:
        pa, pq = import_pyarrow()
        arrays, names = [], []
        for name in self.features:
            if name in columns:
                values = columns[name]
                if values.ndim == 2:
                    flat = pa.array(values.ravel(), pa.float32())
                    arrays.append(pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
                else:
                    arrays.append(pa.array(values))
                names.append(name)
        table = pa.Table.from_arrays(arrays, names=names)
        cursor = self._data
        cursor.place(cursor.path(self.root, DATA_PATH), table.nbytes, DATA_FILE_SIZE_IN_MB)
        path = cursor.path(self.root, DATA_PATH)
        if cursor.used:
            table = pa.concat_tables([pq.read_table(path), table])
        write_atomic_with(path, lambda tmp: pq.write_table(table, tmp, compression="snappy"))
        cursor.used = True
        frames = len(columns["index"])
        return {"data/chunk_index": cursor.chunk, "data/file_index": cursor.file,
                "dataset_from_index": self.total_frames, "dataset_to_index": self.total_frames + frames}

    def _append_video(self, key: str, encoded: EncodedEpisode) -> dict[str, Any]:
        cursor = self._videos[key]
        cursor.place(cursor.path(self.root, VIDEO_PATH, video_key=key), encoded.path.stat().st_size,
                     VIDEO_FILE_SIZE_IN_MB)
        path = cursor.path(self.root, VIDEO_PATH, video_key=key)
        path.parent.mkdir(parents=True, exist_ok=True)
        start = append_video(path if cursor.used else None, encoded.path, path)
        encoded.path.unlink()
        if not cursor.used and self.features[key]["info"] is None:
            self.features[key]["info"] = video_info(path)
        cursor.used = True
        return {f"videos/{key}/chunk_index": cursor.chunk, f"videos/{key}/file_index": cursor.file,
                f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": start + encoded.frames / self.fps}

    def _write_meta(self) -> None:
        """Episodes, tasks, stats, then info (the totals) last: info.json never counts an episode not yet written."""
        pa, pq = import_pyarrow()
        episodes = pa.Table.from_pylist(self.episodes)
        write_atomic_with(self.root / EPISODES_PATH.format(chunk_index=0, file_index=0),
                 lambda tmp: pq.write_table(episodes, tmp))
        write_atomic_with(self.root / "meta/tasks.parquet", lambda tmp: pq.write_table(self._tasks_table(), tmp))
        stats = {name: aggregate([e[name] for e in self.episode_stats]) for name in self.features}
        write_atomic_with(self.root / "meta/stats.json", lambda tmp: tmp.write_text(json.dumps(to_json(stats), indent=4)))
        self._write_info()

    def _tasks_table(self) -> Any:
        """meta/tasks.parquet as pandas writes `DataFrame({"task_index": ...}, index=tasks)` (LeRobot reads it with
        pandas and takes each task's text from the index)."""
        pa, _ = import_pyarrow()
        tasks = sorted(self.tasks, key=self.tasks.get)
        pandas_meta = {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                "metadata": {"encoding": "UTF-8"}}],
            "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                         "numpy_type": "int64", "metadata": None},
                        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                         "numpy_type": "object", "metadata": None}],
            "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3",
        }
        table = pa.table({"task_index": pa.array([self.tasks[t] for t in tasks], pa.int64()),
                          "__index_level_0__": pa.array(tasks, pa.string())})
        return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})

    def _write_info(self) -> None:
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
            "total_episodes": self.total_episodes, "total_frames": self.total_frames, "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILE_SIZE_IN_MB, "fps": self.fps,
            "splits": {"train": f"0:{self.total_episodes}"} if self.total_episodes else {},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH if self.cameras else None, "features": self.features,
        }
        write_atomic_with(self.root / "meta/info.json", lambda tmp: tmp.write_text(json.dumps(info, indent=4)))

