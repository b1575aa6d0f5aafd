"""Where the protocol overhead of one chunk goes (loopback, queue delay 0, one client, demo_act: compute ~0.3 ms).

    python benchmarks/bench_serve_overhead.py [--calls 200] [--no-write]

Rows: a gRPC call with no model (is_server_live: tritonclient + gRPC + Triton's front end); PyTriton with a trivial
echo model (adds Triton's Python-backend stub and PyTriton's hop to the serving process); `edge serve` (PyTriton)
with demo_act; the repository `edge serve --write-repository` writes, in the plain tritonserver binary PyTriton
ships (the model runs in the Python-backend stub itself: no second hop); the client's request serialisation alone.
Overhead = round trip - server compute. Run with the robot side's Python (tritonclient); the server side in
EDGE_SERVE_PYTHON or ./.venv-serve (PyTriton).
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


def echo_server(ports: list[int]) -> None:
    """(In the server's Python) a PyTriton model returning its input, until killed."""
    from edge.serve.triton import libpython_first

    libpython_first()
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    @batch
    def echo(x: np.ndarray) -> dict:
        return {"y": x}

    g, h, m = ports
    config = TritonConfig(grpc_address="127.0.0.1", grpc_port=g, http_address="127.0.0.1", http_port=h,
                          metrics_address="127.0.0.1", metrics_port=m)
    with Triton(config=config) as server:
        server.bind(model_name="echo", infer_func=echo, inputs=[Tensor(name="x", dtype=np.float32, shape=(-1,))],
                    outputs=[Tensor(name="y", dtype=np.float32, shape=(-1,))],
                    config=ModelConfig(max_batch_size=8, batcher=DynamicBatcher(max_queue_delay_microseconds=0)))
        server.serve()


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
    import tritonclient.grpc as g

    from tests.serve.conftest import free_ports

    ports = free_ports(3)
    process = subprocess.Popen([python, __file__, "--echo-server", *map(str, ports)], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        client = g.InferenceServerClient(f"127.0.0.1:{ports[0]}")
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
    return [f"| gRPC call, no model (is_server_live) | {live[0]:.2f} / {live[1]:.2f} | - | - |",
            f"| PyTriton, trivial echo model (4 floats) | {echo[0]:.2f} / {echo[1]:.2f} | - | - |"]


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


def repository_row(python: str, n: int) -> tuple[str, float]:
    from tests.serve.test_repository import plain_tritonserver

    tmp = Path(tempfile.mkdtemp())
    try:
        repo = tmp / "models"
        subprocess.run([python, "-m", "edge", "serve", "--write-repository", str(repo), str(PACKAGE),
                        "--queue-delay-us", "0"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                       capture_output=True)
        process, grpc = plain_tritonserver(python, repo, tmp)
        try:
            return chunk_row("written repository, plain tritonserver, demo_act", f"grpc://127.0.0.1:{grpc}", n)
        finally:
            process.terminate()
            process.wait(timeout=60)
    finally:
        shutil.rmtree(tmp)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--echo-server", type=int, nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.echo_server:
        echo_server(args.echo_server)  # the server's Python: no pytest, no tritonclient imports above
        return 0
    from benchmarks._results import publish
    from benchmarks.bench_serve import serve_python
    from tests.serve.conftest import Server

    os.environ.setdefault("EDGE_SERVE_PYTHON", serve_python())
    python = os.environ["EDGE_SERVE_PYTHON"]
    rows = trivial_rows(python, args.calls)
    server = Server([PACKAGE], "--queue-delay-us", "0")
    try:
        row, serialise = chunk_row("`edge serve` (PyTriton), demo_act", server.url, args.calls)
    finally:
        server.stop()
    rows.append(row)
    rows.append(repository_row(python, args.calls)[0])
    load = os.getloadavg()[0]
    body = "\n".join([
        f"One client, loopback, queue delay 0, {args.calls} calls per row; server and client share this machine's "
        f"cores (load average {load:.1f} at the end). Client request serialisation (6 input tensors): "
        f"{serialise:.3f} ms p50. Target: overhead <= 3 ms p50.", "",
        "| path | round trip p50 / p99 ms | server compute p50 ms | overhead p50 / p99 ms |", "|---|---|---|---|",
        *rows])
    publish("serving-overhead", "Serving: where the protocol overhead goes", "benchmarks/bench_serve_overhead.py",
            body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
