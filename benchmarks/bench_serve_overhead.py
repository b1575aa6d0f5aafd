"""Where the protocol overhead of one chunk goes (loopback, queue delay 0, one client, demo_act: compute ~0.3 ms).

    python benchmarks/bench_serve_overhead.py [--calls 200] [--no-write]

Rows: a gRPC call with no model (is_server_live: tritonclient + gRPC + Triton's front end); a trivial echo model in
Triton's Python backend (adds the hop to the Python-backend stub the model runs in); `edge serve` with demo_act (the
plain tritonserver binary nvidia-pytriton ships, on the repository it writes: our six inputs and four outputs and
edge's runtime in the stub); the client's request serialisation alone. Overhead = round trip - server compute. Run
with the robot side's Python (tritonclient); the server side in EDGE_SERVE_PYTHON or ./.venv-serve (nvidia-pytriton).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE = ROOT / "edge" / "data" / "demo_act"


ECHO_CONFIG = """name: "echo"
backend: "python"
max_batch_size: 8
input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 4 ] } ]
dynamic_batching { max_queue_delay_microseconds: 0 }
"""
ECHO_MODEL = """import triton_python_backend_utils as pb


class TritonPythonModel:
    def execute(self, requests):
        return [pb.InferenceResponse([pb.Tensor("y", pb.get_input_tensor_by_name(r, "x").as_numpy())])
                for r in requests]
"""


def p50_ms(call, n: int) -> tuple[float, float]:  # noqa: ANN001
    for _ in range(10):
        call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def trivial_rows(python: str, n: int) -> list[str]:
    """A gRPC call with no model, and a trivial echo model in the Python backend, on the plain tritonserver."""
    import tritonclient.grpc as g

    from tests.serve.test_repository import plain_tritonserver

    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / "models" / "echo" / "1").mkdir(parents=True)
        (tmp / "models" / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
        (tmp / "models" / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
        process, grpc = plain_tritonserver(python, tmp / "models", tmp)
        try:
            client = g.InferenceServerClient(f"127.0.0.1:{grpc}")
            end = time.monotonic() + 180
            while not _ready(client, "echo"):
                if time.monotonic() > end or process.poll() is not None:
                    sys.exit("the echo server did not start")
                time.sleep(0.5)
            x = g.InferInput("x", [1, 4], "FP32")
            x.set_data_from_numpy(np.zeros((1, 4), np.float32))
            live = p50_ms(client.is_server_live, n)
            echo = p50_ms(lambda: client.infer("echo", [x]), n)
            client.close()
        finally:
            process.terminate()
            process.wait(timeout=60)
    finally:
        shutil.rmtree(tmp)
    return [f"| gRPC call, no model (is_server_live) | {live[0]:.2f} / {live[1]:.2f} | - | - |",
            f"| trivial echo model (4 floats) in the Python backend | {echo[0]:.2f} / {echo[1]:.2f} | - | - |"]


def _ready(client, model: str) -> bool:  # noqa: ANN001
    try:
        return client.is_model_ready(model)
    except Exception:  # noqa: BLE001 - not up yet
        return False


def chunk_row(label: str, url: str, n: int) -> tuple[str, float]:
    from benchmarks.bench_serve import observation
    from edge.robot.remote import RemotePlanner
    from edge.robot.telemetry import Histogram

    planner = RemotePlanner(PACKAGE, url, timeout_ms=60_000, seed=1)
    end = time.monotonic() + 180
    while True:
        try:
            planner.connect()
            break
        except Exception:  # noqa: BLE001 - the plain tritonserver is still loading
            if time.monotonic() > end:
                raise
            time.sleep(1)
    context = planner.observe(observation(planner.package.manifest, np.random.default_rng(0)))
    none = np.zeros((0, planner.action_dim), np.float32)
    for _ in range(10):
        planner.plan(context, none, 0)
    planner.round_trip_ms, planner.compute_ms, planner.overhead_ms = Histogram(), Histogram(), Histogram()
    for _ in range(n):
        planner.plan(context, none, 0)
    g = planner._grpc
    serialise = p50_ms(lambda: [g.InferInput(t.name, [1, *t.shape], g.np_to_triton_dtype(np.dtype(t.dtype)))
                                .set_data_from_numpy(np.zeros((1, *t.shape), t.dtype)) for t in planner.spec.inputs], n)
    planner.close()
    rt, c, o = planner.round_trip_ms, planner.compute_ms, planner.overhead_ms
    return (f"| {label} | {rt.percentile(50):.2f} / {rt.percentile(99):.2f} | {c.percentile(50):.2f} | "
            f"{o.percentile(50):.2f} / {o.percentile(99):.2f} |"), serialise[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    from benchmarks._results import publish
    from benchmarks.bench_serve import serve_python
    from tests.serve.conftest import Server

    os.environ.setdefault("EDGE_SERVE_PYTHON", serve_python())
    python = os.environ["EDGE_SERVE_PYTHON"]
    rows = trivial_rows(python, args.calls)
    server = Server([PACKAGE], "--queue-delay-us", "0")
    try:
        row, serialise = chunk_row("`edge serve` (plain tritonserver), demo_act", server.url, args.calls)
    finally:
        server.stop()
    rows.append(row)
    load = os.getloadavg()[0]
    body = "\n".join([
        f"One client, loopback, queue delay 0, {args.calls} calls per row; server, client and other engineers' work "
        f"share this machine's {os.cpu_count()} cores (load average {load:.1f} at the end). Client request serialisation (6 input tensors): "
        f"{serialise:.3f} ms p50. Target: overhead <= 3 ms p50.", "",
        "| path | round trip p50 / p99 ms | server compute p50 ms | overhead p50 / p99 ms |", "|---|---|---|---|",
        *rows])
    publish("serving-overhead", "Serving: where the protocol overhead goes", "benchmarks/bench_serve_overhead.py",
            body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
