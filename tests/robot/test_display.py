"""`edge run --display` streams to a real rerun gRPC server on loopback (`rerun --save`, rerun's own receiver);
the saved recording, read back with rerun's own dataframe reader, holds each tick's joints and camera frame."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from robot_helpers import CAMERA, SLACK, decoded_frames, edge, edit_robot_file, pattern, servo_writes, write_video

from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import load_records

rr = pytest.importorskip("rerun")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def column(table, name: str) -> list:  # noqa: ANN001
    return table.column(name).to_pylist()


def test_display_streams_joints_and_frames_to_a_rerun_server(arm, act_cam, tmp_path: Path) -> None:
    emulator, robot = arm
    video = write_video(tmp_path / "top.avi", [pattern(96, 128, seed=i) for i in range(10)])
    edit_robot_file(robot, cameras={CAMERA: {"type": "opencv", "source": video.name, "width": 128, "height": 96}})
    port, rrd, telemetry = free_port(), tmp_path / "view.rrd", tmp_path / "run.jsonl"
    rerun = Path(sys.executable).with_name("rerun")
    server = subprocess.Popen([str(rerun), "--bind", "127.0.0.1", "--port", str(port), "--save", str(rrd)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in server.stdout:  # wait until it listens
            if "Listening for gRPC" in line:
                break
        result = edge("run", "--robot", str(robot), "--policy", str(act_cam), "--duration", "1", "--quiet",
                      "--display", "--display-ip", "127.0.0.1", "--display-port", str(port),
                      "--telemetry", str(telemetry), *SLACK)
        assert result.returncode == 0, result.stderr
    finally:
        server.send_signal(signal.SIGINT)  # rerun finishes the .rrd on Ctrl-C
        server.wait(timeout=30)
    records = load_records(telemetry)
    table = rr.dataframe.load_recording(str(rrd)).view(index="frame", contents="/**").select().read_all()
    assert column(table, "frame") == list(range(len(records))) == list(range(30))
    for j, name in enumerate(load_robot_config(robot).position_names):
        shown = [v[0] for v in column(table, f"/observation.{name}:Scalars:scalars")]
        np.testing.assert_allclose(shown, [r["present"][j] for r in records], rtol=1e-6)
        shown = [v[0] for v in column(table, f"/action.{name}:Scalars:scalars")]
        np.testing.assert_allclose(shown, [r["action"][j] for r in records], rtol=1e-6)
    sources = [f.tobytes() for f in decoded_frames(video)]
    images = column(table, f"/{CAMERA}:Image:buffer")
    assert all(bytes(np.asarray(b[0], np.uint8)) in sources for b in images)  # raw frames, exactly as captured
    assert len({bytes(np.asarray(b[0], np.uint8)) for b in images}) > 3
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)


def test_display_without_an_address_on_a_headless_robot_is_refused(arm, act_cam, tmp_path: Path) -> None:
    emulator, robot = arm
    video = write_video(tmp_path / "top.avi", [pattern(96, 128, seed=0)] * 5)
    edit_robot_file(robot, cameras={CAMERA: {"type": "opencv", "source": video.name, "width": 128, "height": 96}})
    before = servo_writes(emulator)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "edge", "run", "--robot", str(robot), "--policy", str(act_cam),
                             "--display", "--duration", "1", *SLACK], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2 and "--display-ip" in result.stderr, result.stderr
    assert servo_writes(emulator) == before
