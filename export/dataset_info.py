"""The training dataset's joint names and rate, from LeRobot's meta/info.json, for the package's `dataset` section.

The names are in the dataset, not the checkpoint: features["observation.state"]["names"] and ["action"]["names"]
(`shoulder_pan.pos`, ...), either a list or, in older datasets, a dict of lists ({"motors": [...]}), flattened in
order. `edge-export --dataset-info meta/info.json` names the file; otherwise it is looked for next to the dataset the
checkpoint's train_config.json trained on (`dataset.root`, or $HF_LEROBOT_HOME/<dataset.repo_id> when root is null).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calibration.lerobot_paths import hf_lerobot_home
from calibration.strict_files import brief, read_json
from edge.runtime.package import DatasetInfo
from export.errors import CheckpointError

INFO = Path("meta") / "info.json"


def flatten_names(names: Any, where: str) -> list[str] | None:
    """A feature's `names` as one list of strings: a list (of strings or lists), or a dict of lists in order."""
    if names is None:
        return None
    if isinstance(names, dict):
        parts = list(names.values())
    elif isinstance(names, list):
        parts = names
    else:
        raise CheckpointError(f"{where}: expected a list or a dict of lists, got {type(names).__name__}")
    flat: list[str] = []
    for part in parts:
        items = part if isinstance(part, list) else [part]
        if not all(isinstance(n, str) and n for n in items):
            raise CheckpointError(f"{where}: names must be non-empty strings, got {brief(part)}")
        flat += items
    return flat


def read_dataset_info(path: str | Path) -> DatasetInfo:
    """The fps and the state/action names of a LeRobot meta/info.json (names None where the dataset has none)."""
    path = Path(path)
    info = read_json(path, CheckpointError, "dataset info")
    features = info.get("features") if isinstance(info, dict) else None
    if not isinstance(features, dict):
        raise CheckpointError(f"{path}: no 'features' object (is this a LeRobot dataset's meta/info.json?)")
    fps = info.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0
                            or float(fps) != int(fps)):
        raise CheckpointError(f"{path}: 'fps' must be a positive whole number, got {brief(fps)}")

    def names(key: str) -> list[str] | None:
        feature = features.get(key)
        return flatten_names(feature.get("names"), f"{path}: features.{key}.names") if isinstance(feature, dict) \
            else None

    return DatasetInfo(None if fps is None else int(fps), names("observation.state"), names("action"))


def find_dataset_info(checkpoint: str | Path) -> Path | None:
    """meta/info.json of the dataset the checkpoint's train_config.json names, if it is on this machine."""
    config = Path(checkpoint) / "train_config.json"
    try:
        data = read_json(config, CheckpointError, "train config")
    except CheckpointError:  # missing or unreadable: the dataset is simply not found
        return None
    dataset = (data.get("dataset") if isinstance(data, dict) else None) or {}
    root = dataset.get("root") if isinstance(dataset, dict) else None
    repo_id = dataset.get("repo_id") if isinstance(dataset, dict) else None
    if isinstance(root, str) and root:
        candidate = Path(root).expanduser() / INFO
    elif isinstance(repo_id, str) and repo_id:
        candidate = hf_lerobot_home() / repo_id / INFO
    else:
        return None
    return candidate if candidate.is_file() else None


def check_dataset_info(info: DatasetInfo, state_dim: int | None, action_dim: int, source: Path) -> None:
    """The names must count the checkpoint's state and action elements (before anything is exported)."""
    for key, names, dim in (("observation.state", info.state_names, state_dim), ("action", info.action_names,
                                                                                  action_dim)):
        if names is not None and dim is not None and len(names) != dim:
            raise CheckpointError(f"{source}: features.{key}.names lists {len(names)} names but the checkpoint's "
                                  f"{key} has {dim} values; is this the dataset it was trained on?")
