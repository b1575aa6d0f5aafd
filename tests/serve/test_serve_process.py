"""`edge serve`'s own process: it stops its tritonserver in order on a signal, ends when that server dies, and
serves gRPC over TLS with tritonserver's SSL options.

Each test starts a real `edge serve` (tritonserver with demo_act in a Python-backend stub) and looks at its child
processes in /proc: after `edge serve` exits, neither tritonserver nor a stub may be left, nor its temporary
repository.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.errors import BackendError, PolicyServerError
from edge.exit_status import exit_status
from edge.robot.remote import RemotePlanner
from tests.serve.conftest import DATA, Server, children, command_line, running
from tests.serve.test_remote_planner import observation


def served() -> tuple[Server, int, list[int], Path]:
    """A ready `edge serve` of demo_act, its tritonserver's pid, the stubs' pids and its temporary directory."""
    server = Server([DATA / "demo_act"])
    triton = server.tritonserver()
    stubs = [pid for pid in children(triton) if "triton_python_backend_stub" in command_line(pid)]
    assert stubs, "the model runs in no Python-backend stub"
    repository = re.search(r"--model-repository=(\S+)", command_line(triton))
    assert repository, command_line(triton)
    return server, triton, stubs, Path(repository.group(1)).parent


def assert_nothing_left(pids: list[int], workdir: Path) -> None:
    assert not [pid for pid in pids if running(pid)], [command_line(pid) for pid in pids if running(pid)]
    assert not workdir.exists(), f"{workdir} (the temporary repository) was not removed"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_tritonserver_and_its_stubs_and_removes_the_repository(client_module, signum):  # noqa: ANN001
    server, triton, stubs, workdir = served()
    try:
        os.kill(server.process.pid, signum)
        server.process.wait(timeout=60)
        err = server.process.stderr.read()
    finally:
        server.stop()
    assert server.process.returncode == 128 + signum, err
    assert "ready: demo_act at grpc://127.0.0.1:" in err  # the one line said when /v2/health/ready answered
    assert_nothing_left([triton, *stubs], workdir)


def test_a_tritonserver_that_dies_ends_edge_serve_with_its_status_and_log(client_module):  # noqa: ANN001
    """SIGKILL the tritonserver child (not `edge serve`): `edge serve` exits with the status edge/exit_status.py
    maps a BackendError to, naming the server's exit and quoting the end of its log."""
    server, triton, stubs, workdir = served()
    try:
        os.kill(triton, signal.SIGKILL)
        server.process.wait(timeout=60)
        err = server.process.stderr.read()
    finally:
        server.stop()
    assert server.process.returncode == exit_status(BackendError("tritonserver died")) != 0, err
    assert f"error: tritonserver (pid {triton}) exited with signal SIGKILL" in err, err
    assert "Started GRPCInferenceService at 127.0.0.1:" in err.split("exited with signal SIGKILL")[1], err  # its log
    assert_nothing_left(stubs, workdir)


def certificates(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 that it signed, made by the openssl command line."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make certificates with")
    ca, ca_key, cert, key = (workdir / n for n in ("ca.pem", "ca.key", "server.pem", "server.key"))
    (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for args in (["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
                  "-subj", "/CN=edge test CA"],
                 ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", workdir / "server.csr", "-subj",
                  "/CN=127.0.0.1"],
                 ["x509", "-req", "-in", workdir / "server.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                  "-out", cert, "-days", "1", "-extfile", workdir / "san.ext"]):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return ca, cert, key


def test_grpc_over_tls_serves_a_robot_with_the_ca_and_refuses_plain_grpc(client_module, tmp_path):  # noqa: ANN001
    """--tls-cert/--tls-key: tritonserver's --grpc-use-ssl; `edge run --server grpcs://... --server-ca` connects."""
    ca, cert, key = certificates(tmp_path)
    server = Server([DATA / "demo_act"], "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        with pytest.raises(PolicyServerError, match="is not reachable"):
            RemotePlanner(DATA / "demo_act", server.url, timeout_ms=5_000).connect()  # grpc://: no TLS
        planner = RemotePlanner(DATA / "demo_act", f"grpcs://127.0.0.1:{server.grpc}", timeout_ms=30_000,
                                root_cert=ca, seed=3)
        planner.connect()
        with edge.load_policy(DATA / "demo_act", backend="onnxruntime") as local:
            obs = observation(local, np.random.default_rng(4))
            remote = planner.plan(planner.observe(obs), np.zeros((0, local.action_dim), np.float32), 0)
            assert np.abs(remote - local.predict_action_chunk(obs)).max() <= 1e-5
        planner.close()
    finally:
        server.stop()
