"""One camera's video, encoded off the control thread: the tick hands over a frame reference, a thread encodes.

Each episode goes to its own temporary MP4 (LeRobot's encoding: `libsvtav1`, yuv420p, g=2, crf=30, preset 12 by
default); once the episode is kept, `append_video` remuxes it (no re-encode) onto the end of the camera's
videos/<key>/chunk-XXX/file-XXX.mp4, as LeRobot's `concatenate_video_files` does. The queue between the tick and
the encoder is bounded: when the encoder falls behind and it is full, the tick's frame is not queued and the
encoder repeats the last frame it got in its place, so the video keeps one frame per tick (in sync with the data)
and nothing on the control path waits or grows; the repeats are counted and reported per episode.
Image statistics (LeRobot's per-channel min/max/mean/std/quantiles in [0, 1]) come from exact 256-bin
histograms of every frame, subsampled 4x in each direction, built on the encoder thread.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VCODECS = ("libsvtav1", "h264", "hevc")  # what LeRobot's encode_video_frames accepts
QUEUE_SECONDS = 2.0  # frames the encoder may lag behind the loop before it repeats frames
PIXEL_STRIDE = 4  # image statistics use every 4th pixel in each direction


def import_av() -> Any:
    """PyAV, or an ImportError saying how to get it."""
    try:
        import av
    except ImportError:
        raise ImportError("recording needs PyAV and pyarrow: pip install 'edge-policy-runtime[record]'") from None
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner and settings to stderr otherwise
    return av


def codec_options(vcodec: str) -> dict[str, str]:
    """LeRobot's encoder settings (datasets/video_utils.py encode_video_frames defaults)."""
    options = {"g": "2", "crf": "30"}
    if vcodec == "libsvtav1":
        options["preset"] = "12"
    return options


@dataclass
class EncodedEpisode:
    """What the encoder made of one episode."""

    path: Path  # the temporary MP4
    frames: int
    repeated: int  # frames repeated because the encoder had fallen behind
    histogram: np.ndarray  # (3, 256) pixel counts per channel


class VideoStream:
    """The encoder thread of one camera; `push` is the only call made on the control thread."""

    def __init__(self, key: str, shape: tuple[int, int, int], fps: int, vcodec: str) -> None:
        self.key, self.shape, self.fps, self.vcodec = key, tuple(shape), fps, vcodec
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, int(QUEUE_SECONDS * fps)))
        self._result: queue.Queue = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start_episode(self, path: Path) -> None:
        """Open a new temporary MP4 and the thread that encodes into it."""
        self._thread = threading.Thread(target=self._encode, args=(path,), name=f"encoder {self.key}", daemon=True)
        self._thread.start()

    def push(self, index: int, frame: np.ndarray) -> None:
        """Hand over the tick's frame (read-only, never reused by the camera): never waits."""
        try:
            self._queue.put_nowait((index, frame))
        except queue.Full:
            pass  # the encoder repeats its last frame for this index

    def finish(self, frames: int) -> EncodedEpisode:
        """Flush the episode (`frames` ticks long) and close its file; waits for the encoder."""
        self._queue.put((frames, None))
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._result.get_nowait()

    def _encode(self, path: Path) -> None:
        try:
            self._result.put(self._run(path))
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish() on the caller's thread
            self._error = exc
            while True:  # keep draining so the loop never sees a full queue from a dead encoder
                index, frame = self._queue.get()
                if frame is None:
                    return

    def _run(self, path: Path) -> EncodedEpisode:
        av = import_av()
        height, width = self.shape[:2]
        histogram = np.zeros((3, 256), np.int64)
        repeated = written = 0
        last: np.ndarray | None = None
        with av.open(str(path), "w") as container:
            stream = container.add_stream(self.vcodec, rate=self.fps, options=codec_options(self.vcodec))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"

            def encode(image: np.ndarray) -> None:
                nonlocal written
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = written
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1

            while True:
                index, image = self._queue.get()
                while written < index and last is not None:  # ticks whose frame did not fit in the queue
                    encode(last)
                    repeated += 1
                if image is None:
                    break
                small = image[::PIXEL_STRIDE, ::PIXEL_STRIDE]
                for c in range(3):
                    histogram[c] += np.bincount(small[..., c].ravel(), minlength=256)
                encode(image)
                last = image
            for packet in stream.encode(None):
                container.mux(packet)
        return EncodedEpisode(path, written, repeated, histogram)


def append_video(existing: Path | None, episode: Path, out: Path) -> float:
    """Write `existing` (if any) then `episode` into `out` by remuxing packets, the episode's timestamps shifted to
    follow on; returns the episode's first timestamp in `out` (LeRobot's `videos/<key>/from_timestamp`)."""
    av = import_av()
    start = 0.0
    tmp = out.with_name(out.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as output:
        target = None
        offset = 0
        for source in [p for p in (existing, episode) if p is not None]:
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                if target is None:
                    target = output.add_stream_from_template(stream, opaque=True)
                if source == episode:
                    start = float(offset * stream.time_base)
                end = offset
                for packet in container.demux(stream):
                    if packet.dts is None:  # the demuxer's flush packet
                        continue
                    packet.pts += offset
                    packet.dts += offset
                    end = max(end, packet.pts + packet.duration)
                    packet.stream = target
                    output.mux(packet)
                offset = end
    os.replace(tmp, out)
    return start


def video_info(path: Path) -> dict[str, Any]:
    """meta/info.json's `features[<camera>].info`, read from the encoded file as LeRobot's `get_video_info` does."""
    av = import_av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {"video.height": stream.height, "video.width": stream.width,
                "video.codec": stream.codec_context.codec.canonical_name, "video.pix_fmt": stream.pix_fmt,
                "video.is_depth_map": False, "video.fps": int(stream.base_rate), "video.channels": 3,
                "has_audio": False}
