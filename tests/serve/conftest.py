"""The real tritonserver for the serving tests: `edge serve` in a subprocess, in the Python that has nvidia-pytriton
(whose wheel ships the tritonserver binary `edge serve` runs).

nvidia-pytriton needs numpy < 2, so CI installs it into a venv of its own (.ci/run) and names its interpreter in
EDGE_SERVE_PYTHON; the tests themselves, the robot side, run in the suite's Python (numpy 2 in CI) with
tritonclient. Without either, these tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "edge" / "data"
LOCAL_SERVE_VENV = ROOT / ".venv-serve" / "bin" / "python"


def serve_python() -> str | None:
    """The interpreter that can run `edge serve`: EDGE_SERVE_PYTHON, else ./.venv-serve, else this one if it has
    nvidia-pytriton."""
    if os.environ.get("EDGE_SERVE_PYTHON"):
        return os.environ["EDGE_SERVE_PYTHON"]
    if LOCAL_SERVE_VENV.exists():
        return str(LOCAL_SERVE_VENV)
    try:
        import pytriton  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (read from /proc: Linux, as tritonserver is)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(parent) == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def command_line(pid: int) -> str:
    """The command line of `pid`, "" once it has exited."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    """One `edge serve` process on free loopback ports."""

    def __init__(self, packages: list[Path], *options: str, ports: list[int] | None = None):
        python = serve_python()
        if python is None:
            pytest.skip("no Python with nvidia-pytriton (set EDGE_SERVE_PYTHON or make .venv-serve; CI does)")
        self.ports = ports or free_ports(3)
        self.grpc, http, metrics = self.ports
        self.url = f"grpc://127.0.0.1:{self.grpc}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [python, "-m", "edge", "serve", *map(str, packages), "--grpc-port", str(self.grpc), "--http-port",
             str(http), "--metrics-port", str(metrics), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.models = [p.resolve().name for p in packages]
        self.wait_ready()

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until every model answers ready on the HTTP endpoint (plain HTTP also when gRPC is over TLS)."""
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"edge serve exited with {self.process.returncode}: {self.process.stderr.read()}")
            try:
                if all(opener.open(f"http://127.0.0.1:{self.ports[1]}/v2/models/{m}/ready", timeout=2).status == 200
                       for m in self.models):
                    return
            except OSError:  # not up yet
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"edge serve was not ready within {timeout} s")

    def tritonserver(self) -> int:
        """The pid of the tritonserver `edge serve` started."""
        found = [pid for pid in children(self.process.pid) if "tritonserver" in command_line(pid)]
        assert len(found) == 1, f"edge serve has no single tritonserver child: {found}"
        return found[0]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def client_module():
    return pytest.importorskip("tritonclient.grpc", reason="the robot side needs tritonclient[grpc]")


@pytest.fixture(scope="session")
def server(client_module) -> Iterator[Server]:  # noqa: ANN001
    """The three bundled demo packages on one server; a 50 ms queue delay so that concurrent requests batch."""
    s = Server([DATA / "demo_act", DATA / "demo_diffusion", DATA / "demo_vqbet"], "--max-batch", "4",
               "--queue-delay-us", "50000")
    yield s
    s.stop()


@pytest.fixture
def tampered_act(tmp_path: Path) -> Path:
    """demo_act with another identity: the same graphs, one manifest field changed (still a valid package)."""
    import json

    copy = tmp_path / "other" / "demo_act"
    shutil.copytree(DATA / "demo_act", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["source"]["checkpoint"] += " (retrained)"
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


@pytest.fixture(scope="session")
def batched_package(lerobot_fixtures: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """`batched_package("act_cam")` → that LeRobot fixture exported once with serve batch graphs B = 2 and 4;
    "vqbet_sequential": tests/vqbet's small random `sequentially_select` checkpoint (no LeRobot fixture has one)."""
    from export.families.base import ExportOptions
    from export.pipeline import export_package
    from tests.vqbet.conftest import SEQUENTIAL_CONFIG, write_random_checkpoint

    done: dict[str, Path] = {}

    def _export(case: str) -> Path:
        if case not in done:
            root = tmp_path_factory.mktemp("batched")
            ckpt = (write_random_checkpoint(root / "checkpoint", SEQUENTIAL_CONFIG) if case == "vqbet_sequential"
                    else lerobot_fixtures / case / "pretrained_model")
            out = root / case
            export_package(ckpt, out, ExportOptions(samples=2, serve_batches=(2, 4)), progress=lambda _msg: None)
            done[case] = out
        return done[case]

    return _export
