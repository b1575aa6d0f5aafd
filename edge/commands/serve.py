"""`edge serve PACKAGE [PACKAGE ...]`: serve policy packages to robots from NVIDIA Triton (extra [serve]).

One model per package, named after its directory; robots connect with `edge run --server grpc://host:8001`.
`--write-repository DIR` writes a standard Triton model repository instead (for NVIDIA's Triton container or
Kubernetes) and starts nothing. docs/serving.md has the wire contract, TLS and the container command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.errors import CLIError


def _int_in(lo: int, hi: int, what: str):  # noqa: ANN202
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, got {value}")
        return value
    return parse


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
    p.add_argument("--grpc-port", type=_int_in(1, 65535, "--grpc-port"), default=8001)
    p.add_argument("--http-port", type=_int_in(1, 65535, "--http-port"), default=8000)
    p.add_argument("--metrics-port", type=_int_in(1, 65535, "--metrics-port"), default=8002)
    p.add_argument("--max-batch", type=_int_in(1, 64, "--max-batch"), default=8,
                   help="largest batch Triton's dynamic batcher forms (default 8; 1: no batching)")
    p.add_argument("--queue-delay-us", type=_int_in(0, 1_000_000, "--queue-delay-us"), default=0,
                   help="how long a request may wait for others to batch with (default 0, see docs/serving.md)")
    p.add_argument("--instances", type=_int_in(1, 64, "--instances"), default=1,
                   help="model instances per package in a written repository (instance_group count)")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    p.add_argument("--sampler", default=None, help="Diffusion packages: the sampler (ddim, ddpm, dpmsolver++, unipc)")
    p.add_argument("--steps", type=_int_in(1, 10_000, "--steps"), default=None,
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
    if args.write_repository is not None:
        from edge.serve.repository import write_repository

        write_repository(args.write_repository, args.packages, options, args.max_batch, args.queue_delay_us,
                         args.instances)
        print(f"wrote a Triton model repository for {', '.join(names)} to {args.write_repository} "
              "(docs/serving.md: the container command)")
        return 0
    from edge.serve.model import ServedPolicy
    from edge.serve.triton import ServerOptions, serve

    served: list[ServedPolicy] = []
    try:
        for path, opts in zip(args.packages, options):
            print(f"loading {path} ...", file=sys.stderr)
            served.append(ServedPolicy(path, backend=args.backend, **opts))
        server = ServerOptions(args.host, args.grpc_port, args.http_port, args.metrics_port, args.max_batch,
                               args.queue_delay_us, args.tls_cert, args.tls_key, args.tls_client_ca)
        scheme = "grpcs" if args.tls_cert else "grpc"
        for s in served:
            print(f"serving {s.name} ({s.runner.package.manifest.policy_type}, identity {s.identity.tobytes().hex()[:16]}, "
                  f"{s.runner.backend.describe()}) at {scheme}://{args.host}:{args.grpc_port}; max batch "
                  f"{args.max_batch} ({s.batching}), queue delay {args.queue_delay_us} us", file=sys.stderr)
        serve(served, server)
    finally:
        for s in served:
            s.close()
    return 0
