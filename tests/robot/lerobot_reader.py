"""Run in the LeRobot reader's own venv (tests/robot/lerobot_venv.py): open a dataset with LeRobot's
`LeRobotDataset` (video_backend="pyav") and save every item and the metadata as LeRobot returns them to an npz.

Usage: python lerobot_reader.py DATASET_ROOT OUT.npz
"""

import json
import sys

import numpy as np
from ledataset.datasets.lerobot_dataset import LeRobotDataset

root, out = sys.argv[1], sys.argv[2]
dataset = LeRobotDataset(f"local/{root.rstrip('/').split('/')[-1]}", root=root, video_backend="pyav")
meta = dataset.meta
items = [dataset[i] for i in range(len(dataset))]
arrays = {key: np.stack([np.asarray(item[key]) for item in items])
          for key in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index")}
for key in meta.video_keys:  # float32 CHW in [0, 1], as LeRobot hands frames to a policy
    arrays[key] = np.stack([item[key].numpy() for item in items])
episodes = [{k: (v.item() if hasattr(v, "item") else v) for k, v in meta.episodes[i].items() if not k.startswith("stats/")}
            for i in range(meta.total_episodes)]
info = {"fps": meta.fps, "total_episodes": meta.total_episodes, "total_frames": meta.total_frames,
        "video_keys": meta.video_keys, "features": meta.features, "tasks": [item["task"] for item in items],
        "task_names": list(meta.tasks.index), "episodes": episodes,
        "stats_keys": {k: sorted(v) for k, v in meta.stats.items()},
        "state_mean": np.asarray(meta.stats["observation.state"]["mean"]).tolist()}
np.savez(out, info=json.dumps(info, default=str), **arrays)
print(f"read {len(items)} frames in {meta.total_episodes} episodes")
