"""`edge serve`'s own process: it stops its tritonserver in order on a signal, and ends when that server dies.

Each test starts a real `edge serve` (tritonserver with demo_act in a Python-backend stub) and looks at its child
processes in /proc: after `edge serve` exits, neither tritonserver nor a stub may be left, nor its temporary
repository.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from edge.errors import BackendError
from edge.exit_status import exit_status
from tests.serve.conftest import DATA, Server, children, command_line, running


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
