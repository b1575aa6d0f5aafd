"""The robot files edge ships (edge/data/robots/*.yaml) and what a `--robot` argument names."""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import RobotConfigError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "data" / "robots"


def robot_file(name_or_path: str | Path) -> Path:
    """The robot file a `--robot` argument means: an existing file, or the name of a bundled preset."""
    path = Path(name_or_path).expanduser()
    if path.is_file() or path.suffix or os.sep in str(name_or_path):
        return path
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    raise RobotConfigError(f"no robot file {str(name_or_path)!r} (and no preset of that name; presets: "
                           f"{', '.join(presets())})")


def presets() -> list[str]:
    """Names of the bundled robot files (`edge run --robot koch`)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
