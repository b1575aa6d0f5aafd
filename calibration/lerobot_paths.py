"""Where LeRobot keeps things on disk, resolved exactly as LeRobot 0.4.4 does, and the `<motor>.pos` feature names.

src/lerobot/utils/constants.py: HF_LEROBOT_HOME = $HF_LEROBOT_HOME, else $HF_HOME/lerobot (huggingface_hub's HF_HOME:
$HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface); calibration = $HF_LEROBOT_CALIBRATION, else
HF_LEROBOT_HOME/calibration. src/lerobot/robots/robot.py: a robot's file is <calibration>/robots/<type>/<id>.json.
Datasets recorded locally live in HF_LEROBOT_HOME/<repo_id>. Every function reads the environment when called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ROBOTS = "robots"
POS_SUFFIX = ".pos"  # LeRobot's Dynamixel/Feetech robots name each joint's feature "<motor>.pos"
LEGACY_CALIBRATION_DIR = Path("~/.cache/edge/calibration")  # where the presets kept theirs before LeRobot's location


def hf_home(env: Mapping[str, str] = os.environ) -> Path:
    """huggingface_hub's HF_HOME."""
    default = os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(env.get("HF_HOME", default)).expanduser()


def hf_lerobot_home(env: Mapping[str, str] = os.environ) -> Path:
    """LeRobot's HF_LEROBOT_HOME (local datasets, calibration)."""
    return Path(env.get("HF_LEROBOT_HOME", str(hf_home(env) / "lerobot"))).expanduser()


def calibration_root(env: Mapping[str, str] = os.environ) -> Path:
    """LeRobot's HF_LEROBOT_CALIBRATION."""
    return Path(env.get("HF_LEROBOT_CALIBRATION", str(hf_lerobot_home(env) / "calibration"))).expanduser()


def robot_calibration_dir(robot_type: str, env: Mapping[str, str] = os.environ) -> Path:
    """The folder of one robot type's calibration files (`.../calibration/robots/koch_follower`)."""
    return calibration_root(env) / ROBOTS / robot_type


def robot_calibration_file(robot_type: str, robot_id: str, env: Mapping[str, str] = os.environ) -> Path:
    """The calibration file LeRobot reads and writes for `--robot.type=<type> --robot.id=<id>`."""
    return robot_calibration_dir(robot_type, env) / f"{robot_id}.json"


def calibrated_ids(robot_type: str, env: Mapping[str, str] = os.environ) -> list[str]:
    """The ids that have a calibration file for `robot_type`, for messages."""
    folder = robot_calibration_dir(robot_type, env)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def joint_feature_name(joint: str) -> str:
    """The dataset name of a joint's position (`shoulder_pan` -> `shoulder_pan.pos`, `left_gripper.pos` on a bimanual
    robot): what LeRobot records in features["observation.state"]["names"] and ["action"]["names"]."""
    return f"{joint}{POS_SUFFIX}"


def joint_feature_names(joints: Iterable[str]) -> list[str]:
    """`joint_feature_name` of each joint, in order."""
    return [joint_feature_name(j) for j in joints]
