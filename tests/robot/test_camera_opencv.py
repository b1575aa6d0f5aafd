"""OpenCVCamera on real files decoded by real OpenCV: paced at the file's rate, looped, RGB, rotated like LeRobot's
camera, latest frame only with its capture time, and the wrong size refused by name."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from robot_helpers import CAMERA, decoded_frames, pattern, write_video

from edge.robot.cameras import CameraError, OpenCVCamera, OpenCVCameraConfig

FPS = 30.0


def colour_frames(n: int, height: int = 96, width: int = 128) -> list[np.ndarray]:
    """Frame i is flat RGB (8 i, 200, 255 - 8 i): the index can be read back through JPEG."""
    return [np.full((height, width, 3), (8 * i, 200, 255 - 8 * i), np.uint8) for i in range(n)]


def index_of(frame: np.ndarray) -> int:
    return int(round(float(frame[..., 0].mean()) / 8))


def test_video_file_plays_at_its_rate_loops_and_delivers_rgb(tmp_path: Path) -> None:
    n = 12
    video = write_video(tmp_path / "cam.avi", colour_frames(n), FPS)
    cam = OpenCVCamera(CAMERA, OpenCVCameraConfig(source=str(video), width=128, height=96))
    cam.start()
    try:
        assert cam.fps == FPS and cam.max_age_s == pytest.approx(3 / FPS)  # default: 3 frame periods
        seen: list[tuple[float, int]] = []
        start = time.monotonic()
        deadline = start + 10.0
        while time.monotonic() < deadline and not (len(seen) > n and seen[-1][1] < seen[-2][1]):
            frame, stamp = cam.latest()  # never waits: the tick would spin here at full speed
            if not seen or stamp != seen[-1][0]:
                seen.append((stamp, index_of(frame)))
            time.sleep(0.002)
        elapsed = time.monotonic() - start
        frame, stamp = cam.latest()
    finally:
        cam.close()
    indices = [i for _, i in seen]
    assert indices[-1] < indices[-2], f"the file did not loop: {indices}"  # wrapped around to the start
    assert indices[:n] == sorted(indices[:n])  # in file order
    # Paced at the file's rate, not as fast as it decodes (a 128x96 MJPG frame decodes in well under 1 ms).
    assert len(seen) <= FPS * elapsed + 3
    stamps = [s for s, _ in seen]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert frame.dtype == np.uint8 and frame.shape == (96, 128, 3) and not frame.flags.writeable
    r, g, b = frame[48, 64].astype(int)
    i = index_of(frame)
    assert abs(r - 8 * i) <= 6 and abs(g - 200) <= 6 and abs(b - (255 - 8 * i)) <= 6  # RGB, not OpenCV's BGR


@pytest.mark.parametrize("rotation, k", [(90, -1), (180, 2), (270, 1)])
def test_rotation_matches_lerobot(tmp_path: Path, rotation: int, k: int) -> None:
    """LeRobot's Cv2Rotation: 90 is clockwise, 270 counter-clockwise (lerobot/cameras/utils.py get_cv2_rotation);
    width/height name the delivered (rotated) frame. np.rot90 turns counter-clockwise for positive k."""
    video = write_video(tmp_path / "cam.avi", [pattern(96, 128, seed=1)] * 3, FPS)
    expected = np.rot90(decoded_frames(video)[0], k)
    h, w = expected.shape[:2]
    cam = OpenCVCamera(CAMERA, OpenCVCameraConfig(source=str(video), width=w, height=h, rotation=rotation))
    cam.start()
    try:
        frame, _ = cam.latest()
    finally:
        cam.close()
    np.testing.assert_array_equal(frame, expected)


def test_wrong_size_is_refused_naming_camera_and_shapes(tmp_path: Path) -> None:
    video = write_video(tmp_path / "small.avi", colour_frames(3, height=64, width=80), FPS)
    cam = OpenCVCamera(CAMERA, OpenCVCameraConfig(source=str(video), width=128, height=96))
    with pytest.raises(CameraError, match=r"camera observation.images.top .*delivers \(64, 80, 3\) frames, "
                                          r"expected \(96, 128, 3\)"):
        cam.start()


def test_a_source_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "not_a_video.avi").write_bytes(b"nothing here")
    cam = OpenCVCamera(CAMERA, OpenCVCameraConfig(source=str(tmp_path / "not_a_video.avi"), width=128, height=96))
    with pytest.raises(CameraError, match="not_a_video.avi"):
        cam.start()


def test_image_sequence_that_stops_delivering_goes_stale(tmp_path: Path) -> None:
    """An image sequence is a camera too; when its files go away no new frame comes, and the last one only ages."""
    import cv2

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"f_{i:03d}.jpg"), pattern(96, 128, seed=i))
    cam = OpenCVCamera(CAMERA, OpenCVCameraConfig(source=str(tmp_path / "f_%03d.jpg"), width=128, height=96, fps=FPS))
    cam.start()
    try:
        for f in tmp_path.glob("f_*.jpg"):
            f.unlink()
        time.sleep(0.1)  # a frame already being decoded may still land
        frames, (_, stamp) = cam.frames, cam.latest()
        time.sleep(0.3)
        assert cam.frames == frames and cam.latest()[1] == stamp and cam.failures > 0
    finally:
        cam.close()
