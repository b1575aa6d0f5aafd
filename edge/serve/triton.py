"""`edge serve`'s server: NVIDIA Triton Inference Server through PyTriton (extra [serve]), one model per package.

PyTriton ships the real `tritonserver` with its Python backend; each model's requests reach `ServedPolicy.infer`
in this process. Two facts this module handles (docs/serving.md): the Python-backend stub links libpython through
the loader path, so LD_LIBRARY_PATH gets this interpreter's own LIBDIR first (else a pyenv/venv interpreter may
pick up the system's libpython and die in multiprocessing); PyTriton binds 0.0.0.0 unless the gRPC, HTTP and
metrics addresses are all set, so all three are.
"""

from __future__ import annotations

import os
import socket
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import BackendError
from edge.serve.model import ServedPolicy

PORT_WAIT_S = 30.0  # how long a restarted server waits for its predecessor's tritonserver to let go of the ports


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    max_batch: int = 8
    queue_delay_us: int = 0
    tls_cert: Path | None = None  # PEM server certificate and key: gRPC over TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM root certificate: mutual TLS, clients must present a certificate it signed


def libpython_first() -> None:
    """Put this interpreter's LIBDIR first on LD_LIBRARY_PATH (inherited by tritonserver and its Python stubs)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        rest = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *rest])


def import_pytriton() -> Any:
    try:
        import pytriton.triton as triton
    except ImportError as exc:
        raise BackendError(f"edge serve needs PyTriton: pip install \".[serve]\" ({exc})") from None
    return triton


def triton_config(options: ServerOptions) -> Any:
    """PyTriton's TritonConfig: every endpoint on `host`, gRPC over TLS when a certificate is given."""
    triton = import_pytriton()
    tls: dict[str, Any] = {}
    if options.tls_cert is not None:
        tls = {"grpc_use_ssl": True, "grpc_server_cert": options.tls_cert, "grpc_server_key": options.tls_key}
        if options.tls_client_ca is not None:
            tls.update(grpc_use_ssl_mutual=True, grpc_root_cert=options.tls_client_ca)
    return triton.TritonConfig(grpc_address=options.host, grpc_port=options.grpc_port,
                               http_address=options.host, http_port=options.http_port,
                               metrics_address=options.host, metrics_port=options.metrics_port,
                               exit_on_error=True, **tls)


def bind(server: Any, served: ServedPolicy, options: ServerOptions) -> None:
    """Serve one package as model `served.name`, version 1, with Triton's dynamic batcher."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    spec = served.spec
    server.bind(model_name=served.name, infer_func=served.infer,
                inputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in spec.inputs],
                outputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in spec.outputs],
                config=ModelConfig(max_batch_size=options.max_batch,
                                   batcher=DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us)),
                strict=True)


def busy_ports(options: ServerOptions) -> list[int]:
    """The gRPC/HTTP/metrics ports that cannot be bound on `host` now (SO_REUSEADDR, as Triton binds them, so
    connections in TIME_WAIT do not count)."""
    busy = []
    for port in (options.grpc_port, options.http_port, options.metrics_port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((options.host, port))
            except OSError:
                busy.append(port)
    return busy


def wait_for_ports(options: ServerOptions, wait_s: float = PORT_WAIT_S) -> None:
    """Wait until every port binds. A killed `edge serve` leaves its tritonserver shutting down for a few seconds
    (PyTriton sends it SIGTERM when its parent dies), still listening; a server restarted at once would have
    tritonserver fail to bind and PyTriton wait minutes for a server that already exited."""
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


def serve(served: list[ServedPolicy], options: ServerOptions) -> None:
    """Start Triton with every package bound and block until Ctrl-C / SIGTERM."""
    libpython_first()
    wait_for_ports(options)
    triton = import_pytriton()
    with triton.Triton(config=triton_config(options)) as server:
        for policy in served:
            bind(server, policy, options)
        server.serve()
