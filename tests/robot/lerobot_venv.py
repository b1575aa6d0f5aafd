"""Where the LeRobot dataset reader's own venv is: LeRobot's dataset code (PyPI lerobot-dataset 0.4.4, module
ledataset, LeRobot 0.4.3's) needs torch and torchvision < 0.25 (its pyav backend is torchvision's VideoReader) and
pins huggingface-hub, numpy and opencv below what the project's venv holds, so it lives apart; .ci/run builds it
(`.ci/lerobot_reader_venv`, before the suite starts). Tests using it skip when it is absent, unless
EDGE_REQUIRE_LEROBOT_READER=1 (CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READER = Path(__file__).with_name("lerobot_reader.py")


def reader_python() -> Path:
    """The venv's python, or skip (fail under EDGE_REQUIRE_LEROBOT_READER=1: CI must run these tests)."""
    python = Path(os.environ.get("EDGE_LEROBOT_VENV", ROOT / ".venv-lerobot")) / "bin" / "python"
    if not python.exists():
        message = f"LeRobot's dataset reader venv not found at {python.parent.parent} (.ci/lerobot_reader_venv builds it)"
        if os.environ.get("EDGE_REQUIRE_LEROBOT_READER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python


def read_with_lerobot(root: Path, out: Path) -> Path:
    """Open the dataset at `root` with LeRobot's LeRobotDataset (video_backend="pyav"); its items land in `out`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(out.parent / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run([str(reader_python()), str(READER), str(root), str(out)], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out
