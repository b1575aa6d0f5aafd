"""`edge build <package> [--fp16] [--rebuild] [--engine-dir DIR]`: TensorRT engines for this device."""

from __future__ import annotations

import argparse
import sys

from edge.option_types import non_negative_int
from edge.runtime.package import load_package


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("build", help="build TensorRT engines for this device",
                              description="Build a TensorRT engine per graph on the device it will run on. Engines "
                                          "go to <package>/engines/<trt version>_<gpu>_<sm>_<precision>/ (or under "
                                          "--engine-dir); fresh ones are kept, stale ones are reported and only "
                                          "replaced with --rebuild. The graphs are checked against TensorRT 10.3's "
                                          "ONNX operator support first.")
    p.add_argument("package", help="policy package directory")
    p.add_argument("--fp16", action="store_true",
                   help="FP16 engines, built strongly typed from the package's FP16 ONNX (`python -m export.fp16`)")
    p.add_argument("--rebuild", action="store_true", help="rebuild stale or existing engines")
    p.add_argument("--engine-dir", default=None,
                   help="engine directory (default $EDGE_ENGINE_DIR, else <package>/engines); the runtime loads "
                        "engines from it when given the same directory (EDGE_ENGINE_DIR or engine_dir=)")
    p.add_argument("--workspace-mb", type=non_negative_int, default=0, help="TensorRT workspace limit in MiB (default: TensorRT's)")
    return p


def run(args: argparse.Namespace) -> int:
    from edge.runtime.backends.engine_cache import BuildOptions, cache_root
    from edge.runtime.backends.onnxruntime import onnxruntime_conflict
    from edge.runtime.backends.trt_builder import build_engines

    conflict = onnxruntime_conflict()
    if conflict:
        print(f"warning: {conflict}", file=sys.stderr)
    package = load_package(args.package)
    precision = "fp16" if args.fp16 else "fp32"
    preflight = package.manifest.fp16_preflight
    if args.fp16 and not (preflight is not None and preflight.ok):
        print("warning: this package has no passing FP16 preflight; run `python -m export.fp16` on the "
              "workstation to measure FP16 error before trusting FP16 engines", file=sys.stderr)
    elif args.fp16 and preflight.range_headroom is None:
        print("warning: this package's FP16 preflight predates the FP16 range screen and measured weight rounding "
              "only; re-run `python -m export.fp16` on the workstation to see FP16 activations", file=sys.stderr)
    build_engines(package, precision, rebuild=args.rebuild, engine_dir=args.engine_dir,
                  report=lambda msg: print(msg, file=sys.stderr, flush=True),
                  options=BuildOptions(args.workspace_mb))
    root = cache_root(package, args.engine_dir)
    if root != package.path / "engines":
        print(f"engines are in {root}: run with EDGE_ENGINE_DIR={root} (or edge.load_policy(..., "
              f"engine_dir={str(root)!r})) so that the runtime loads them", file=sys.stderr)
    return 0
