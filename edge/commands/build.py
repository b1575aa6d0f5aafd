"""`edge build <package> [--fp16] [--rebuild]`: TensorRT engines for this device, cached beside the package."""

from __future__ import annotations

import argparse
import sys

from edge.package import load_package


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("build", help="build TensorRT engines for this device",
                              description="Build a TensorRT engine per graph on the device it will run on. Engines "
                                          "go to <package>/engines/<trt version>_<gpu>_<sm>_<precision>/; fresh ones "
                                          "are kept, stale ones are reported and only replaced with --rebuild.")
    p.add_argument("package", help="policy package directory")
    p.add_argument("--fp16", action="store_true",
                   help="FP16 engines (TensorRT >= 10.12 needs the package's FP16 ONNX from `python -m export.fp16`)")
    p.add_argument("--rebuild", action="store_true", help="rebuild stale or existing engines")
    p.add_argument("--engine-dir", default=None, help="engine cache directory (default <package>/engines)")
    p.add_argument("--workspace-mb", type=int, default=None, help="TensorRT workspace limit in MiB")
    return p


def run(args: argparse.Namespace) -> int:
    from edge.backends.tensorrt import build_engines

    package = load_package(args.package)
    precision = "fp16" if args.fp16 else "fp32"
    if args.fp16 and not (package.manifest.fp16_preflight is not None and package.manifest.fp16_preflight.ok):
        print("warning: this package has no passing FP16 preflight; run `python -m export.fp16` on the "
              "workstation to measure FP16 error before trusting FP16 engines", file=sys.stderr)
    build_engines(package, precision, rebuild=args.rebuild, cache_dir=args.engine_dir,
                  report=lambda msg: print(msg, file=sys.stderr, flush=True), workspace_mb=args.workspace_mb)
    return 0
