"""Cameras that never make the control tick wait: a capture thread per camera keeps only the latest frame.

`Camera` is the interface the robot reads (LeRobot's `read_latest` idea): `latest()` returns at once with the
newest frame and its capture time, so a 30 fps camera costs a 100 Hz tick nothing; how old that frame is at the
tick is the robot's business (a frame older than `max_age_s` is a camera fault). `CAMERAS` maps the robot file's
camera `type:` to what builds its Camera subclass and checks the type's own options (errors name the camera and
the option); `open_camera` builds one. `OpenCVCamera` (type `opencv`) opens what the robot file names through
OpenCV: a device index or /dev/video* path, a video file or image sequence
(played at its own frame rate and looped, so a recording stands in for a camera), or a GStreamer pipeline (Jetson
CSI cameras; needs an OpenCV built with GStreamer, as JetPack's is). Frames are uint8 HWC RGB, rotated as
configured, exactly as LeRobot's OpenCVCamera delivers them, and read-only (a published frame is never reused).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.errors import EdgeError
from edge.robot.robot_file.schema import DEFAULT_FRAME_PERIODS, CameraConfig

logger = logging.getLogger(__name__)
FIRST_FRAME_TIMEOUT_S = 5.0


class CameraError(EdgeError):
    """A camera cannot be opened or delivers frames the policy cannot take; the message names it."""


class Camera(ABC):
    """What the robot needs from a camera; as a context manager it is started on entry and closed on exit."""

    name: str
    shape: tuple[int, int, int]  # the delivered frame, (H, W, 3)
    max_age_s: float  # a frame older than this at a tick is a camera fault

    @abstractmethod
    def start(self) -> None:
        """Open the source and wait for the first frame (CameraError if none comes or its size is wrong; a failed
        start leaves nothing open)."""

    @abstractmethod
    def latest(self) -> tuple[np.ndarray, float]:
        """The newest frame (uint8 HWC RGB) and its capture time on `time.monotonic()`; never waits."""

    @abstractmethod
    def close(self) -> None:
        """Stop capturing and release the source."""

    def __enter__(self) -> Camera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_cv2() -> Any:
    """OpenCV, or a CameraError saying how to get it (a system OpenCV with Python bindings is enough)."""
    try:
        import cv2
    except ImportError:
        raise CameraError("cameras need OpenCV: pip install 'edge-policy-runtime[camera]' (opencv-python-headless), "
                          "or use the system's OpenCV (JetPack's python3-opencv)") from None
    return cv2


def has_gstreamer(cv2: Any) -> bool:
    """Whether this OpenCV can open GStreamer pipelines (JetPack's build can; the pip wheels cannot)."""
    info = cv2.getBuildInformation()
    line = next((ln for ln in info.splitlines() if ln.strip().startswith("GStreamer:")), "")
    return "YES" in line


ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class OpenCVCameraConfig:
    """An `opencv` camera, as LeRobot's OpenCVCameraConfig describes it.

    source: a device index, a /dev/video* path, a video file or image sequence (`frame_%03d.jpg`; played at its own
    frame rate, looping) or a GStreamer pipeline string (contains '!'). width/height: the frame the policy gets,
    after `rotation` (degrees clockwise; 90/270 capture height x width, as LeRobot). max_age_ms: an older frame at
    a tick is a camera fault (None: DEFAULT_FRAME_PERIODS frame periods).
    """

    source: int | str
    width: int
    height: int
    fps: float | None = None
    fourcc: str | None = None
    rotation: int = 0
    max_age_ms: float | None = None

    @property
    def kind(self) -> str:
        """"index", "device", "gstreamer" or "file"."""
        if isinstance(self.source, int):
            return "index"
        if "!" in self.source:
            return "gstreamer"
        return "device" if self.source.startswith("/dev/") else "file"

    @property
    def shape(self) -> tuple[int, int, int]:
        """The delivered frame: (height, width, 3), uint8 RGB."""
        return (self.height, self.width, 3)

    @classmethod
    def from_config(cls, name: str, config: CameraConfig) -> OpenCVCameraConfig:
        """Check the robot file entry's opencv options (source required; fourcc, rotation); a video file source,
        relative to the robot file's folder, must exist."""
        where = f"camera {name}"
        unknown = sorted(set(config.options) - {"source", "fourcc", "rotation"})
        if unknown:
            raise CameraError(f"{where}: unknown option(s) {', '.join(unknown)} for type opencv (its options: "
                              "source, fourcc, rotation)")
        source = config.options.get("source")
        if isinstance(source, bool) or not isinstance(source, (int, str)) or source == "" or (
                isinstance(source, int) and source < 0):
            raise CameraError(f"{where}: option 'source': expected a device index >= 0, a /dev/video* path, a "
                              f"video file or a GStreamer pipeline, got {source!r}")
        fourcc = config.options.get("fourcc")
        if fourcc is not None and (not isinstance(fourcc, str) or len(fourcc) != 4):
            raise CameraError(f"{where}: option 'fourcc': expected 4 characters such as MJPG, got {fourcc!r}")
        rotation = config.options.get("rotation", 0)
        if isinstance(rotation, bool) or rotation not in ROTATIONS:
            raise CameraError(f"{where}: option 'rotation': expected one of {ROTATIONS}, got {rotation!r}")
        camera = cls(source, config.width, config.height, config.fps, fourcc, rotation, config.max_age_ms)
        if camera.kind != "file":
            return camera
        path = (config.base_dir / Path(str(source)).expanduser()).resolve()
        if not any(p.is_file() for p in _first_files(path)):
            raise CameraError(f"{where}: option 'source': no video file (or image sequence) {path}")
        return replace(camera, source=str(path))


def _first_files(path: Path) -> list[Path]:
    """The file itself, or the first frames of an image sequence such as `frame_%03d.jpg` (OpenCV numbers from 0
    or 1)."""
    if "%" not in path.name:
        return [path]
    try:
        return [path.parent / (path.name % i) for i in (0, 1)]
    except (TypeError, ValueError):
        return [path]


class OpenCVCamera(Camera):
    """One robot-file camera on a background capture thread (see the module docstring)."""

    @classmethod
    def from_config(cls, name: str, config: CameraConfig) -> OpenCVCamera:
        """The `opencv` camera of the robot file's entry `name` (options checked by OpenCVCameraConfig)."""
        return cls(name, OpenCVCameraConfig.from_config(name, config))

    def __init__(self, name: str, config: OpenCVCameraConfig) -> None:
        self.name = name
        self.config = config
        self.shape = config.shape
        self.fps = config.fps
        self.max_age_s = 0.0 if config.max_age_ms is None else config.max_age_ms / 1000
        self.frames = 0  # frames published
        self.failures = 0  # reads that returned no usable frame
        self.delivered: tuple[int, ...] | None = None  # shape of the last frame the source gave, after rotation
        self._cap: Any = None
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __str__(self) -> str:
        return f"camera {self.name} ({self.config.source})"

    def start(self) -> None:
        """Open the source, start the capture thread and wait for the first frame of the configured size."""
        cv2 = self._cv2 = import_cv2()
        self._rotate = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                        270: cv2.ROTATE_90_COUNTERCLOCKWISE}.get(self.config.rotation)
        kind = self.config.kind
        if kind == "gstreamer" and not has_gstreamer(cv2):
            raise CameraError(f"{self}: this OpenCV was built without GStreamer (the pip wheel is); use the "
                              "system OpenCV (JetPack's) for a GStreamer pipeline")
        backend = cv2.CAP_GSTREAMER if kind == "gstreamer" else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.config.source, backend)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self} could not be opened (`edge cameras` lists what OpenCV can open here)")
        self._cap = cap
        try:
            self._configure(cv2, cap)
        except BaseException:
            self.close()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture, name=f"camera {self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
        while self.frames == 0 and time.monotonic() < deadline and self.delivered in (None, self.shape):
            time.sleep(0.005)
        if self.frames == 0:
            self.close()
            if self.delivered is not None and self.delivered != self.shape:
                raise CameraError(f"{self} delivers {self.delivered} frames, expected {self.shape} "
                                  f"(robot file width {self.config.width} x height {self.config.height}, "
                                  f"rotation {self.config.rotation})")
            raise CameraError(f"{self}: no frame within {FIRST_FRAME_TIMEOUT_S:g} s")

    def _configure(self, cv2: Any, cap: Any) -> None:
        """Devices: fourcc first (it decides the sizes and rates on offer), then size and rate, as LeRobot does.
        Files play at their own rate unless the robot file sets one."""
        height, width = self.shape[:2]
        if self.config.rotation in (90, 270):
            width, height = height, width
        if self.config.kind in ("index", "device"):
            if self.config.fourcc is not None:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.config.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if self.fps is not None:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        reported = cap.get(cv2.CAP_PROP_FPS)
        if self.fps is None:
            if not reported or reported <= 0:
                raise CameraError(f"{self}: the source does not say its frame rate; set fps in the robot file")
            self.fps = float(reported)
        if not self.max_age_s:
            self.max_age_s = DEFAULT_FRAME_PERIODS / self.fps

    def _capture(self) -> None:
        """Read, convert BGR -> RGB, rotate, publish; a file or image sequence is paced at its rate and looped."""
        cv2, cap = self._cv2, self._cap
        paced = self.config.kind == "file"
        period = 1.0 / self.fps
        due = time.monotonic()
        while not self._stop.is_set():
            if paced:
                now = time.monotonic()
                if due > now:
                    self._stop.wait(due - now)
                elif now - due > period:  # fell behind (slow decode, busy machine): no burst to catch up
                    due = now
                due += period
            ok, bgr = cap.read()
            if not ok and paced:  # end of the recording: loop
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = cap.read()
            stamp = time.monotonic()
            if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
                self.failures += 1
                if not paced:
                    self._stop.wait(min(period, 0.05))  # a device hiccup: retry without spinning
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if self._rotate is not None:
                rgb = cv2.rotate(rgb, self._rotate)
            self.delivered = rgb.shape
            if rgb.shape != self.shape:
                self.failures += 1
                continue
            rgb.flags.writeable = False
            with self._lock:
                self._frame, self._stamp = rgb, stamp
            self.frames += 1

    def latest(self) -> tuple[np.ndarray, float]:
        """The newest frame and its capture time (`time.monotonic()`); call after `start()`."""
        with self._lock:
            return self._frame, self._stamp  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the capture thread and release the source (a thread stuck in a driver call is left behind)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
            if thread.is_alive():
                logger.warning("%s: capture thread did not stop; source left open", self)
                return
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


CameraFactory = Callable[[str, CameraConfig], Camera]  # (feature name, robot file entry) -> a camera, not started
# robot file camera `type:` -> what builds it, checking the type's options (edge/robot/robot_file/reader.py CAMERA_TYPES
# lists the same names for the file's check; tests/robot/test_camera_table.py holds them equal)
CAMERAS: dict[str, CameraFactory] = {"opencv": OpenCVCamera.from_config}


def open_camera(name: str, config: CameraConfig) -> Camera:
    """The camera the robot file's entry `name` describes, built by its type's class (not started)."""
    try:
        factory = CAMERAS[config.type]
    except KeyError:
        raise CameraError(f"camera {name}: no camera for type {config.type!r} here (known: "
                          f"{', '.join(CAMERAS)})") from None
    return factory(name, config)


def list_cameras() -> tuple[list[dict[str, Any]], bool]:
    """What OpenCV can open here: each /dev/video* (or index 0..9 elsewhere) with its default size, rate and fourcc;
    and whether GStreamer pipelines (Jetson CSI cameras) can be opened."""
    import glob
    import platform

    cv2 = import_cv2()
    targets: list[int | str] = (sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
                                if platform.system() == "Linux" else list(range(10)))
    found = []
    for target in targets:
        cap = cv2.VideoCapture(target)
        if cap.isOpened():
            code = int(cap.get(cv2.CAP_PROP_FOURCC))
            found.append({"source": target, "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), "fps": cap.get(cv2.CAP_PROP_FPS),
                          "fourcc": "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\x00"),
                          "backend": cap.getBackendName()})
        cap.release()
    return found, has_gstreamer(cv2)
