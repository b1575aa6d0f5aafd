"""Check a raw observation against the package's inputs and turn it into normalised graph tensors.

The robot hands over a dict keyed by LeRobot feature names: states as float arrays, images as uint8
HWC exactly as the camera delivers them. This module does LeRobot's /255, channel-first and
normalisation, and refuses anything that does not match (wrong key, shape, dtype, NaN).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edge.errors import ObservationError
from edge.normalize import Normalizer
from edge.package import ObservationInput


class ObservationProcessor:
    """Validates observations and returns `{feature: float32 array}` normalised, images CHW, no batch dim."""

    def __init__(self, inputs: list[ObservationInput]):
        self.inputs = inputs
        self._norm = {}
        for inp in inputs:
            shape = (3, 1, 1) if inp.kind == "image" else tuple(inp.shape)
            self._norm[inp.name] = Normalizer(inp.normalization, shape, inp.name)

    def validate(self, observation: Mapping[str, np.ndarray]) -> None:
        """Raise ObservationError naming the first problem; the observation is not modified."""
        if not isinstance(observation, Mapping):
            raise ObservationError(f"observation must be a dict keyed by feature name, got {type(observation).__name__}")
        expected = [inp.name for inp in self.inputs]
        missing = [k for k in expected if k not in observation]
        if missing:
            raise ObservationError(f"observation is missing key(s) {missing}; expected {expected}")
        for inp in self.inputs:
            value = observation[inp.name]
            if not isinstance(value, np.ndarray):
                raise ObservationError(f"{inp.name}: expected a numpy array, got {type(value).__name__}")
            if list(value.shape) != list(inp.shape):
                raise ObservationError(f"{inp.name}: expected shape {tuple(inp.shape)}, got {value.shape}")
            if inp.kind == "image":
                if value.dtype != np.uint8:
                    raise ObservationError(f"{inp.name}: images must be uint8 HWC as the camera delivers them, "
                                           f"got {value.dtype}")
            else:
                if value.dtype.kind != "f":
                    raise ObservationError(f"{inp.name}: expected a float array, got {value.dtype}")
                if not np.all(np.isfinite(value)):
                    bad = np.flatnonzero(~np.isfinite(value)).tolist()
                    raise ObservationError(f"{inp.name}: non-finite value(s) at index {bad}")

    def __call__(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.validate(observation)
        out = {}
        for inp in self.inputs:
            value = observation[inp.name]
            if inp.kind == "image":
                value = value.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            else:
                value = value.astype(np.float32, copy=False)
            out[inp.name] = np.ascontiguousarray(self._norm[inp.name](value), dtype=np.float32)
        return out
