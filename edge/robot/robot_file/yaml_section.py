"""A section (mapping) of a YAML file, with typed getters and key checks whose errors carry the dotted field path."""

from __future__ import annotations

import math
from typing import Any

from calibration.strict_files import brief, brief_keys
from edge.errors import RobotConfigError


class Section:
    """A mapping from the YAML with typed getters whose errors carry the dotted field path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise RobotConfigError(f"field '{path or '<top level>'}': expected a mapping, got {type(data).__name__}")
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        """Dotted path of `key` inside this section."""
        key = str(key) if len(str(key)) <= 40 else str(key)[:37] + "..."
        return f"{self.path}.{key}" if self.path else key

    def check_keys(self, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
        """Missing required keys and unknown keys (typos) are both errors."""
        for key in required:
            if key not in self.data:
                raise RobotConfigError(f"field '{self.name(key)}' is missing")
        unknown = [self.name(str(k)) for k in self.data if k not in required and k not in optional]
        if unknown:
            raise RobotConfigError(f"unknown field(s) {brief_keys(unknown)}")

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value, or `default`."""
        return self.data.get(key, default)

    def string(self, key: str) -> str:
        """A non-empty string."""
        value = self.data.get(key)
        if not isinstance(value, str) or not value:
            raise RobotConfigError(f"field '{self.name(key)}': expected a non-empty string, got {brief(value)}")
        return value

    def integer(self, key: str) -> int:
        """An integer (booleans refused)."""
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise RobotConfigError(f"field '{self.name(key)}': expected an integer, got {brief(value)}")
        return value

    def number(self, key: str, positive: bool = False) -> float:
        """A finite number, optionally > 0."""
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RobotConfigError(f"field '{self.name(key)}': expected a number, got {brief(value)}")
        if positive and value <= 0:
            raise RobotConfigError(f"field '{self.name(key)}': must be positive, got {value}")
        return float(value)
