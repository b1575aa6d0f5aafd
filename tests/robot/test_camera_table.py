"""The camera hook: the robot file's camera `type:` list and edge's camera table agree, each entry is built by its
type's class, which checks the type's own options and names the camera and the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from robot_helpers import CAMERA, decoded_frames, pattern, write_video

from edge.errors import RobotConfigError
from edge.robot.robot_file import CameraConfig
from edge.robot.robot_file.reader import CAMERA_TYPES, robot_config_from_dict
from edge.robot.cameras import CAMERAS, CameraError, OpenCVCamera, open_camera

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "robot.yaml"


def camera_entry(tmp_path: Path, **entry: object) -> CameraConfig:
    """The example robot file with one camera entry, loaded as the robot file loader reads it from `tmp_path`."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["calibration"] = str(EXAMPLE.parent / data["calibration"])
    data["cameras"] = {CAMERA: {"type": "opencv", "width": 128, "height": 96, **entry}}
    return robot_config_from_dict(data, base_dir=tmp_path).cameras[CAMERA]


def test_the_robot_files_camera_types_are_the_camera_tables_keys() -> None:
    assert list(CAMERAS) == list(CAMERA_TYPES)


def test_a_robot_file_camera_is_built_by_its_type_and_decodes_real_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "top.avi", [pattern(96, 128, seed=3)] * 6)
    cam = open_camera(CAMERA, camera_entry(tmp_path, source="top.avi", rotation=0, fourcc="MJPG"))
    assert isinstance(cam, OpenCVCamera)
    assert cam.config.source == str(tmp_path / "top.avi")  # relative to the robot file's folder
    with cam:
        frame, _ = cam.latest()
    np.testing.assert_array_equal(frame, decoded_frames(video)[0])  # the video's picture as OpenCV decodes it


@pytest.mark.parametrize("option, message", [
    ({"rotation": 45}, r"camera observation.images.top: option 'rotation': expected one of \(0, 90, 180, 270\)"),
    ({"fourcc": "MJPEG"}, "camera observation.images.top: option 'fourcc': expected 4 characters"),
    ({"source": "missing.avi"}, "camera observation.images.top: option 'source': no video file"),
    ({"source": -1}, "camera observation.images.top: option 'source': expected a device index >= 0"),
    ({"source": 0, "rotaton": 90}, r"camera observation.images.top: unknown option\(s\) rotaton for type opencv"),
])
def test_a_bad_option_is_refused_by_the_camera_class_naming_camera_and_option(tmp_path: Path, option, message) -> None:
    config = camera_entry(tmp_path, **{"source": 0, **option})  # the robot file itself loads: options are the type's
    with pytest.raises(CameraError, match=message):
        open_camera(CAMERA, config)


def test_a_missing_source_is_the_camera_classs_error_and_an_unknown_type_the_robot_files(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="option 'source': expected a device index"):
        open_camera(CAMERA, camera_entry(tmp_path))
    with pytest.raises(RobotConfigError, match="unknown camera type 'realsense' \\(known: opencv\\)"):
        camera_entry(tmp_path, type="realsense", serial_number="123")
