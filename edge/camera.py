"""A small camera interface: anything with `read() -> uint8 HWC frame` can feed an image feature.

`OpenCVCamera` is the usual USB/CSI path (needs opencv-python; unverified here, where there is no
camera). Tests and the demo use arrays they generate themselves.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Camera(Protocol):
    def read(self) -> np.ndarray:
        """The latest frame as uint8 (H, W, 3), RGB, exactly as the policy's training camera delivered it."""

    def close(self) -> None:
        ...


class OpenCVCamera:
    """cv2.VideoCapture at a fixed size; converts BGR to RGB as LeRobot's OpenCV camera does."""

    def __init__(self, index_or_path: int | str, width: int, height: int):
        try:
            import cv2
        except ImportError:
            raise RuntimeError("OpenCVCamera needs opencv-python (pip install opencv-python-headless)") from None
        self._cv2 = cv2
        self._cap = cv2.VideoCapture(index_or_path)
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.shape = (height, width, 3)
        if not self._cap.isOpened():
            raise RuntimeError(f"camera {index_or_path!r} could not be opened")

    def read(self) -> np.ndarray:
        ok, frame = self._cap.read()
        if not ok or frame.shape != self.shape:
            raise RuntimeError(f"camera frame missing or of shape {None if not ok else frame.shape}, expected {self.shape}")
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()
