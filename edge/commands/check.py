"""`edge check <package> [--backend ...]`: load a package as every runner does, run its validation samples and print
the max error per output next to the export-time error."""

from __future__ import annotations

import argparse

from edge.option_types import only_with, positive_float
from edge.runtime.backends import BACKENDS, get_backend
from edge.runtime.backends.onnxruntime import onnxruntime_conflict
from edge.runtime.backends.trt_compat import package_problems, support_table
from edge.runtime.package import Fp16Preflight, load_package
from edge.runtime.validation import check_package
from edge.sim.demo_packages import demo_names, resolve_package


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="self-check a policy package on a backend")
    p.add_argument("package", help=f"policy package directory, or a bundled demo package: {demo_names()}")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--tolerance", type=positive_float, default=None, help="override the package's tolerance")
    p.add_argument("--engine-dir", default=None, help="TensorRT engine directory given to `edge build --engine-dir`")
    only_with(p, "--engine-dir", "--backend tensorrt or auto", when=lambda args: args.backend != "onnxruntime")
    return p


def run(args: argparse.Namespace) -> int:
    path = resolve_package(args.package)
    package = load_package(path)
    options = {"engine_dir": args.engine_dir} if args.engine_dir and args.backend != "onnxruntime" else {}
    backend = get_backend(args.backend, **options)
    results = check_package(package, backend, args.tolerance)
    problems = package_problems(package)
    conflict = onnxruntime_conflict()
    if conflict:
        print(f"warning: {conflict}")
    m = package.manifest
    opsets = sorted({g.opset for g in m.graphs.values()})
    print(f"package  {path}  ({m.policy_type}, {len(m.graphs)} graph(s), opset {'/'.join(map(str, opsets))}, "
          f"{m.validation.samples} samples, {m.weights} weights)")
    print(f"source   {m.source.checkpoint} (sha256 {m.source.sha256[:12]}...)")
    f = m.fp16_preflight
    print(f"fp16     {_fp16_line(m.fp16_preflight)}")
    print(f"backend  {backend.describe()}")
    print(f"{'graph':<16} {'output':<20} {'precision':<9} {'max |err|':>10} {'at export':>10} {'tolerance':>10}  "
          "result")
    for r in results:
        print(f"{r.graph:<16} {r.output:<20} {r.precision:<9} {r.max_abs_error:>10.2e} "
              f"{m.validation.export_max_abs_error[r.graph]:>10.2e} {r.tolerance:>10.0e}  {'ok' if r.ok else 'FAIL'}")
    trt = f"TensorRT {support_table()['tensorrt']} ONNX parser"
    print(f"{trt}: " + ("every node supported" if not problems else "would refuse " + "; ".join(map(str, problems))))
    failed = [r for r in results if not r.ok]
    print("all outputs within tolerance" if not failed else f"{len(failed)} output(s) out of tolerance")
    return 1 if failed else 0


def _fp16_line(f: Fp16Preflight | None) -> str:
    """The manifest's FP16 preflight record in one line, saying how it measured."""
    if f is None:
        return "no preflight (python -m export.fp16 on the workstation)"
    how = (f"activations simulated, FP16 range screened with {f.range_headroom:g}x headroom"
           if f.range_headroom is not None else "weights only (made before activations were simulated: re-run it)")
    return (f"preflight {'passed' if f.ok else 'FAILED'} at tolerance {f.tolerance:g}: worst output "
            f"{f.worst_output_scaled_error:.2e}, worst policy step {f.worst_step_normalized_action_error:.2e} "
            f"(onnxruntime {f.onnxruntime}, {f.provider}, seed {f.seed}, {f.created}); {how}")
