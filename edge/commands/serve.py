"""`edge serve PACKAGE [PACKAGE ...]`: serve policy packages to robots from NVIDIA Triton (extra [serve]).

One model per package, named after its directory; robots connect with `edge run --server grpc://host:8001`.
`edge serve` writes a Triton model repository (edge/serve/repository.py, the packages linked) into a private
temporary directory and runs nvidia-pytriton's plain `tritonserver` binary on it until a signal, or until that
server dies (exit 2, its log's last lines quoted). `--write-repository DIR` writes a standalone repository instead
(for NVIDIA's Triton container or Kubernetes) and starts nothing. docs/serving.md has the wire contract, TLS and
the container command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn

from edge.option_types import int_in
from edge.errors import CLIError

if TYPE_CHECKING:
    from edge.runtime.package import PolicyPackage
    from edge.runtime.package.batches import ServeBatches


def _file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="serve policy packages to robots from Triton Inference Server")
    p.add_argument("packages", nargs="+", type=Path, metavar="PACKAGE", help="policy package directories")
    p.add_argument("--write-repository", type=Path, default=None, metavar="DIR",
                   help="write a Triton model repository to DIR instead of serving")
    p.add_argument("--host", default="127.0.0.1", help="address every endpoint binds to (default 127.0.0.1)")
    p.add_argument("--grpc-port", type=int_in(1, 65535), default=8001)
    p.add_argument("--http-port", type=int_in(1, 65535), default=8000)
    p.add_argument("--metrics-port", type=int_in(1, 65535), default=8002)
    p.add_argument("--max-batch", type=int_in(1, 64), default=8,
                   help="largest batch Triton's dynamic batcher forms (default 8; 1: no batching)")
    p.add_argument("--queue-delay-us", type=int_in(0, 1_000_000), default=0,
                   help="how long a request may wait for others to batch with (default 0, see docs/serving.md)")
    p.add_argument("--instances", type=int_in(1, 64), default=1,
                   help="model instances per package (Triton's instance_group count; default 1)")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    p.add_argument("--sampler", default=None, help="Diffusion packages: the sampler (ddim, ddpm, dpmsolver++, unipc)")
    p.add_argument("--steps", type=int_in(1, 10_000), default=None,
                   help="Diffusion packages: the number of denoising steps K")
    p.add_argument("--tls-cert", type=_file, default=None, help="PEM server certificate: gRPC over TLS")
    p.add_argument("--tls-key", type=_file, default=None, help="PEM key of --tls-cert")
    p.add_argument("--tls-client-ca", type=_file, default=None,
                   help="PEM root certificate: mutual TLS, clients need a certificate it signed")
    return p


def _options(args: argparse.Namespace, policy_type: str) -> dict:
    """load_policy options for one package: --sampler/--steps go to the Diffusion packages."""
    if policy_type != "diffusion":
        return {}
    return {k: v for k, v in (("sampler", args.sampler), ("num_inference_steps", args.steps)) if v is not None}


def run(args: argparse.Namespace) -> int:
    from edge.runtime.package import load_package
    from edge.runtime.wire import model_name

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CLIError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise CLIError("--tls-client-ca needs --tls-cert and --tls-key")
    names = [model_name(p) for p in args.packages]
    if len(set(names)) != len(names):
        raise CLIError(f"two packages share a directory name (the model name): {names}")
    packages = [load_package(p) for p in args.packages]  # every package checked before anything starts
    options = [_options(args, p.manifest.policy_type) for p in packages]
    if (args.sampler or args.steps) and not any(p.manifest.policy_type == "diffusion" for p in packages):
        raise CLIError("--sampler/--steps apply to Diffusion packages; none is given")
    from edge.runtime.package.batches import load_batches, no_tensorrt_engines

    batches = [load_batches(p) for p in packages]  # each serve/ folder checked once, before anything starts
    for path, b in zip(args.packages, batches):
        if args.backend == "tensorrt" and b is not None:
            raise CLIError(no_tensorrt_engines(path))
    from edge.serve.repository import write_repository

    def write(root: Path, link: bool) -> None:
        write_repository(root, args.packages, options, args.max_batch, args.queue_delay_us, args.instances,
                         args.backend, link=link)

    if args.write_repository is not None:
        write(args.write_repository, link=False)
        print(f"wrote a Triton model repository for {', '.join(names)} to {args.write_repository} "
              "(docs/serving.md: the container command)")
        return 0
    serve(args, packages, batches, lambda root: write(root, link=True))


def serve(args: argparse.Namespace, packages: list[PolicyPackage], batches: list[ServeBatches | None],
          write: Callable[[Path], None]) -> NoReturn:
    """Run tritonserver on a private repository of `packages` until a signal (exit 128 + N) or until it dies."""
    from edge.runtime.wire import model_name, package_identity
    from edge.serve.model import batching
    from edge.serve.triton import ServerOptions, running

    options = ServerOptions(args.host, args.grpc_port, args.http_port, args.metrics_port, args.tls_cert,
                            args.tls_key, args.tls_client_ca)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    names = [model_name(p) for p in args.packages]
    for name, path, package, b in zip(names, args.packages, packages, batches):
        say(f"{name}: {package.manifest.policy_type}, identity {package_identity(path).hex()[:16]}, from {path}; "
            f"{batching(b)}")
    with running(write, options) as server:
        say(f"tritonserver (pid {server.process.pid}) loading {', '.join(names)}: each model computes one chunk "
            f"first; log {server.log}")
        server.wait_ready(names, say)
        scheme = "grpcs" if args.tls_cert else "grpc"
        say(f"ready: {', '.join(names)} at {scheme}://{args.host}:{args.grpc_port} (HTTP {args.http_port}, metrics "
            f"{args.metrics_port}); max batch {args.max_batch}, queue delay {args.queue_delay_us} us, "
            f"{args.instances} instance(s) each; Ctrl-C stops")
        server.process.wait()  # until a signal (KeyboardInterrupt: exit 128 + N) or tritonserver exits by itself
        raise server.died()
