"""Helpers for the real-robot tests: run `edge` as a user does, write videos with OpenCV, edit robot files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from firmware_bridge.emulator import ServoEmulator

CAMERA = "observation.images.top"
SLACK = ("--bus-slack-ms", "15")  # the in-process emulator's Python thread can be starved on a shared CI core


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m edge ...` as a user would run it."""
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=timeout)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """An MJPG AVI of RGB `frames` (cv2.VideoWriter wants BGR)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as OpenCV decodes it, RGB: what a camera reading the file can deliver."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def pattern(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (survives JPEG without turning into noise)."""
    small = np.random.default_rng(seed).integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def edit_robot_file(path: Path, **changes: object) -> Path:
    """Rewrite top-level keys of a robot file (e.g. cameras=..., safety=...)."""
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def servo_writes(emulator: ServoEmulator) -> dict[int, list]:
    """Every write each emulated servo accepted from a host (the emulator's own bookkeeping is not logged)."""
    return {i: list(s.writes) for i, s in emulator.servos.items()}
