"""`edge serve`'s server process: the plain `tritonserver` nvidia-pytriton ships, on a repository (extra [serve]).

The models run in Triton's Python-backend stubs (edge/serve/triton_model.py), so a request makes one hop from
Triton to the model: no second process in between. Facts handled here (docs/serving.md): the stub links libpython
through the loader path, so LD_LIBRARY_PATH gets this interpreter's own LIBDIR first (else a pyenv/venv interpreter
may pick up the system's libpython and die in multiprocessing); the stub's embedded Python finds this venv's
packages through the `python` first on PATH; tritonserver binds 0.0.0.0 unless every endpoint's address is given,
so all three are. tritonserver runs in a session of its own (Ctrl-C in a terminal reaches `edge serve` only, which
stops it in order) and is sent SIGTERM if `edge serve` dies, so no server outlives it.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from edge.errors import BackendError

PORT_WAIT_S = 30.0  # how long a restarted server waits for its predecessor's tritonserver to let go of the ports
EXIT_TIMEOUT_S = 10  # tritonserver's --exit-timeout-secs: in-flight requests get this long at shutdown
PROGRESS_S = 10.0  # a line every PROGRESS_S while models load
LOG_TAIL_LINES = 8  # lines of tritonserver's log quoted when it dies (after its last errors)
STUB = "triton_python_backend_stub"
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies


@dataclass
class ServerOptions:
    """Where tritonserver listens and whether gRPC is over TLS (`edge serve`'s options)."""

    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    tls_cert: Path | None = None  # PEM server certificate and key: gRPC over TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM root certificate: mutual TLS, clients must present a certificate it signed

    @property
    def ports(self) -> tuple[int, int, int]:
        """gRPC, HTTP and metrics ports, in that order."""
        return self.grpc_port, self.http_port, self.metrics_port

    def local_url(self, path: str) -> str:
        """An HTTP endpoint URL this machine reaches (a wildcard `host` is probed on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.http_port}{path}"


@dataclass(frozen=True)
class TritonDist:
    """Where nvidia-pytriton's wheel keeps tritonserver, its libraries and its Python backend."""

    binary: Path
    libs: Path
    python_backend: Path  # libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # the Python-backend stub built for this interpreter's Python version


def locate() -> TritonDist:
    """The tritonserver of the installed nvidia-pytriton wheel (not imported: only its files are used)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise BackendError('edge serve needs the tritonserver of nvidia-pytriton: pip install ".[serve]"')
    package = Path(spec.origin).parent
    dist = package / "tritonserver"
    version = "%d.%d" % sys.version_info[:2]
    found = TritonDist(binary=dist / "bin" / "tritonserver", libs=package.parent / "nvidia_pytriton.libs",
                       python_backend=dist / "backends" / "python",
                       stub=dist / "python_backend_stubs" / version / STUB)
    for path in (found.binary, found.libs, found.python_backend, found.stub):
        if not path.exists():
            raise BackendError(f"nvidia-pytriton's tritonserver is incomplete: {path} is missing (Python {version}); "
                               'reinstall with pip install ".[serve]"')
    return found


def backend_directory(dist: TritonDist, root: Path) -> Path:
    """A --backend-directory under `root` whose python/ links the wheel's backend and this Python's stub."""
    python = root / "backends" / "python"
    python.mkdir(parents=True)
    for file in dist.python_backend.iterdir():
        if file.is_file():
            (python / file.name).symlink_to(file)
    (python / STUB).symlink_to(dist.stub)
    return root / "backends"


def environment(dist: TritonDist) -> dict[str, str]:
    """tritonserver's environment: this interpreter's libpython first, the wheel's libraries, this venv's python
    first on PATH and edge importable, so the stubs run the same edge as this command."""
    def first(*paths: str, var: str) -> str:
        rest = [p for p in os.environ.get(var, "").split(os.pathsep) if p and p not in paths]
        return os.pathsep.join([*[p for p in paths if p], *rest])

    edge_root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "LD_LIBRARY_PATH": first(sysconfig.get_config_var("LIBDIR") or "", str(dist.libs),
                                                   var="LD_LIBRARY_PATH"),
            "PATH": first(str(Path(sys.executable).parent), var="PATH"),
            "PYTHONPATH": first(edge_root, var="PYTHONPATH")}


def command(dist: TritonDist, repository: Path, backends: Path, options: ServerOptions) -> list[str]:
    """tritonserver's command line: every endpoint on `options.host`, gRPC over TLS when a certificate is given."""
    args = [str(dist.binary), f"--model-repository={repository}", f"--backend-directory={backends}",
            "--exit-on-error=true", "--strict-readiness=true", f"--exit-timeout-secs={EXIT_TIMEOUT_S}"]
    for endpoint, port in zip(("grpc", "http", "metrics"), options.ports):
        args += [f"--{endpoint}-address={options.host}", f"--{endpoint}-port={port}"]
    if options.tls_cert is not None:
        args += ["--grpc-use-ssl=true", f"--grpc-server-cert={options.tls_cert}",
                 f"--grpc-server-key={options.tls_key}"]
        if options.tls_client_ca is not None:
            args += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={options.tls_client_ca}"]
    return args


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGTERM to the child when `parent` dies (prctl PR_SET_PDEATHSIG; Linux, as tritonserver is)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def set_up() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return set_up


class TritonProcess:
    """One tritonserver on `repository`, in its own session (its stubs in its process group), logging to `log`."""

    def __init__(self, repository: Path, workdir: Path, options: ServerOptions):
        dist = locate()
        self.options = options
        self.log = workdir / "tritonserver.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command(dist, repository, backend_directory(dist, workdir), options),
                                            env=environment(dist), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent(os.getpid()))

    def answers(self, path: str) -> bool:
        """Whether the HTTP endpoint `path` (e.g. /v2/health/ready) answers 200 now."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        try:
            with opener.open(self.options.local_url(path), timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """What tritonserver's log says last (its last 64 KiB, the options table left out): its last error lines
        (E...; not the CUDA driver's on a machine without one), then its last `lines` lines."""
        with open(self.log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - (64 << 10)))
            text = [line for line in f.read().decode(errors="replace").splitlines() if line[:1] not in "|+"]
        tail = text[-lines:]
        errors = [line for line in text[:-lines] if re.match(r"E\d{4} ", line) and "CudaDriverHelper" not in line]
        return "\n".join([*errors[-5:], *(["..."] if errors else []), *tail])

    def died(self) -> BackendError:
        """The error for a tritonserver that exited on its own: its exit status and the end of its log."""
        code = self.process.returncode
        status = f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"
        return BackendError(f"tritonserver (pid {self.process.pid}) exited with {status}; the last lines of its "
                            f"log:\n{self.log_tail()}")

    def wait_ready(self, models: list[str], say: Callable[[str], None]) -> None:
        """Block until /v2/health/ready answers, saying every PROGRESS_S which models still load."""
        start = next_line = time.monotonic()
        while not self.answers("/v2/health/ready"):
            if self.process.poll() is not None:
                raise self.died()
            if time.monotonic() >= next_line + PROGRESS_S:
                next_line = time.monotonic()
                loading = [m for m in models if not self.answers(f"/v2/models/{m}/ready")]
                say(f"still loading {', '.join(loading) or 'the server'} ({next_line - start:.0f} s)")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (in-flight requests finish within EXIT_TIMEOUT_S), SIGKILL past that; then any stub left in its
        process group."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=EXIT_TIMEOUT_S + 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is empty: every stub exited with its server
            pass


def busy_ports(options: ServerOptions) -> list[int]:
    """The gRPC/HTTP/metrics ports that cannot be bound on `host` now (SO_REUSEADDR, as Triton binds them, so
    connections in TIME_WAIT do not count)."""
    import socket

    busy = []
    for port in options.ports:
        family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((options.host, port))
            except OSError:
                busy.append(port)
    return busy


def wait_for_ports(options: ServerOptions, wait_s: float = PORT_WAIT_S) -> None:
    """Wait until every port binds. A killed `edge serve` leaves its tritonserver shutting down for a few seconds
    (it is sent SIGTERM when its parent dies), still listening; a server restarted at once would fail to bind."""
    end = time.monotonic() + wait_s
    busy = busy_ports(options)
    if busy:
        print(f"waiting up to {wait_s:.0f} s for port(s) {busy} on {options.host} (a previous server shutting "
              "down?)", file=sys.stderr)
    while busy and time.monotonic() < end:
        time.sleep(0.2)
        busy = busy_ports(options)
    if busy:
        raise BackendError(f"port(s) {busy} on {options.host} are in use by another process: stop it or choose "
                           "--grpc-port/--http-port/--metrics-port")


@contextmanager
def running(write: Callable[[Path], None], options: ServerOptions) -> Iterator[TritonProcess]:
    """tritonserver on a repository `write` puts into a private temporary directory; stopped, its stubs ended and
    the directory removed on leaving, however the block ends."""
    workdir = Path(tempfile.mkdtemp(prefix="edge-serve-"))
    try:
        write(workdir / "models")
        wait_for_ports(options)
        server = TritonProcess(workdir / "models", workdir, options)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
