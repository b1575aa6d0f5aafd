"""`edge serve --write-repository`: the repository is a standard one that plain `tritonserver` serves.

The tritonserver here is the real 2.51 binary nvidia-pytriton ships, with its Python backend; it is started on the
written (standalone, packages copied) repository with nothing around it, as NVIDIA's container would start it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.robot.remote import RemotePlanner
from tests.serve.conftest import DATA, ROOT, free_ports, serve_python

START = ("import json, sys; from pathlib import Path; from edge.serve.triton import ServerOptions, backend_directory, "
         "command, environment, locate; d = locate(); "
         "print(json.dumps([command(d, Path(sys.argv[1]), backend_directory(d, Path(sys.argv[2])), "
         "ServerOptions(grpc_port=int(sys.argv[3]), http_port=int(sys.argv[4]), metrics_port=int(sys.argv[5]))), "
         "environment(d)]))")


def plain_tritonserver(python: str, repo: Path, workdir: Path) -> tuple[subprocess.Popen, int]:
    """tritonserver on `repo` as `edge serve` starts it (edge/serve/triton.py's command line and environment, found
    by `python`), with no `edge serve` around it; returns the process and its gRPC port."""
    ports = free_ports(3)
    command, env = json.loads(subprocess.check_output([python, "-c", START, str(repo), str(workdir), *map(str, ports)],
                                                      text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, ports[0]


def test_the_written_repository_serves_in_plain_tritonserver(client_module, tmp_path: Path):  # noqa: ANN001
    python = serve_python()
    if python is None:
        pytest.skip("no Python with nvidia-pytriton (its tritonserver binary)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    repo = tmp_path / "models"
    subprocess.run([python, "-m", "edge", "serve", "--write-repository", str(repo), str(DATA / "demo_diffusion"),
                    "--max-batch", "4"], check=True, env=env, cwd=ROOT, capture_output=True)
    config = (repo / "demo_diffusion" / "config.pbtxt").read_text()
    assert "dynamic_batching" in config and "instance_group" in config and "edge_package_identity" in config
    process, grpc = plain_tritonserver(python, repo, tmp_path)
    try:
        planner = RemotePlanner(DATA / "demo_diffusion", f"grpc://127.0.0.1:{grpc}", timeout_ms=30_000, seed=5)
        end = time.monotonic() + 180
        while True:
            try:
                planner.connect()
                break
            except edge.EdgeError:
                if time.monotonic() > end or process.poll() is not None:
                    raise
                time.sleep(1)
        obs = {"observation.state": np.linspace(40, 60, 6, dtype=np.float32),
               "observation.environment_state": np.full(4, 0.5, np.float32)}
        remote = planner.plan(planner.observe(obs), np.zeros((0, 6), np.float32), 0)
        seed = int(np.random.default_rng(5).integers(0, np.iinfo(np.int64).max))
        with edge.load_policy(DATA / "demo_diffusion", backend="onnxruntime") as local:
            noise = np.random.default_rng(seed).standard_normal((1, 16, 6), dtype=np.float32)
            expected = local.predict_action_chunk(obs, noise=noise)[1:]
        assert np.abs(remote - expected).max() <= 1e-5
        planner.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
