"""The FP16 preflight: convert every graph, check and measure the copies, then record them in the package.

The copies are checked (ONNX checker, TensorRT 10.3 operator support, ONNX Runtime on the CPU against the
FP32 graphs on the package's validation samples and through a few policy steps) in a staging folder, and only
then moved to `fp16/<graph>.onnx`, the numbers going to the manifest's `fp16_preflight` field: an error at any
step leaves the package untouched. Every TensorRT >= 10.0 builds the same files as strongly typed networks for
FP16 engines, so the islands the preflight checked are the ones the engine runs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable

import onnx

from edge.runtime.backends.trt_compat import check_model
from edge.runtime.files import staged_directory
from edge.runtime.package import Fp16Preflight, PolicyPackage, load_package, parse_field, sha256_file, write_manifest
from export.errors import Fp16Error
from export.fp16.compare import compare_graph, policy_steps
from export.fp16.convert import ConversionReport, convert_to_fp16

FP16_DIR = "fp16"


def stage_fp16_graphs(package: PolicyPackage, staging: Path) -> tuple[dict[str, tuple[str, str]],
                                                                          dict[str, ConversionReport]]:
    """Convert every graph, refuse one TensorRT 10.3 would not parse, save it under `staging` (a folder inside
    the package, renamed to fp16/ at the end); returns {graph: (file relative to the package, sha256)} and the
    conversion reports."""
    files, reports = {}, {}
    for name in package.manifest.graphs:
        model, reports[name] = convert_to_fp16(onnx.load(str(package.graph_path(name))))
        problems = check_model(model, name)
        if problems:
            raise Fp16Error(f"the FP16 graph would not parse on TensorRT: {'; '.join(map(str, problems))}")
        path = staging / f"{name}.onnx"
        onnx.save(model, str(path))
        files[name] = (str(path.relative_to(package.path)), sha256_file(path))
    return files, reports


def preflight(path: str | Path, steps: int = 8, tolerance: float = 0.02, seed: int = 0,
              progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Convert graphs, measure FP16 vs FP32 on CPU ONNX Runtime, then write the FP16 graphs and the manifest record.

    `ok` is true when every output's scaled error and every step's normalised action error is within
    `tolerance`. Nothing in the package changes unless every step ran (a failed tolerance is recorded,
    an error is not). The FP32 graphs are not touched, so their sha256 in the manifest stays valid.
    """
    import onnxruntime

    package = load_package(path)
    t0 = time.monotonic()
    samples = {name: package.graph_samples(name) for name in package.manifest.graphs}
    with staged_directory(package.path / FP16_DIR) as staging:  # replaces fp16/ only once every step ran
        progress(f"converting {len(package.manifest.graphs)} graph(s) to FP16")
        files, reports = stage_fp16_graphs(package, staging)
        graphs: dict[str, Any] = {}
        for name, (rel, sha) in files.items():
            progress(f"graph {name!r}: FP16 vs FP32 on the validation samples (ONNX Runtime CPU)")
            errors = compare_graph(package.graph_path(name), package.path / rel, samples[name])
            graphs[name] = {"file": rel, "sha256": sha, "conversion": dataclasses.asdict(reports[name]),
                            "outputs": {o: dataclasses.asdict(e) for o, e in errors.items()}}
        worst_output = max(e["scaled"] for g in graphs.values() for e in g["outputs"].values())
        record = {"ok": False, "tolerance": tolerance,
                  "worst_output_scaled_error": worst_output, "worst_step_normalized_action_error": 0.0,
                  "graphs": graphs, "steps": [], "seed": seed, "onnxruntime": onnxruntime.__version__,
                  "provider": "CPUExecutionProvider", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        progress(f"running the policy {steps} steps with FP16 vs FP32 graphs")
        previous = package.manifest.fp16_preflight
        # the FP16 runner finds its (staged) graphs through the record
        package.manifest.fp16_preflight = parse_field(Fp16Preflight, record, "fp16_preflight")
        try:
            rows = policy_steps(package, steps, seed)
        finally:
            package.manifest.fp16_preflight = previous
    for name, info in graphs.items():
        info["file"] = f"{FP16_DIR}/{name}.onnx"
    worst_step = max((r["max_abs_normalized"] for r in rows), default=0.0)
    record.update(ok=bool(worst_output <= tolerance and worst_step <= tolerance), steps=rows,
                  worst_step_normalized_action_error=worst_step)
    package.manifest.fp16_preflight = parse_field(Fp16Preflight, record, "fp16_preflight")
    write_manifest(package.path, package.manifest)
    progress(f"FP16 preflight {'passed' if record['ok'] else 'FAILED'} in {time.monotonic() - t0:.1f} s")
    return record


def format_report(record: dict[str, Any]) -> str:
    """The preflight record as a plain-text table (per output, then per policy step)."""
    lines = [f"{'graph':<12} {'output':<24} {'max |fp16-fp32|':>16} {'max |fp32|':>12} {'scaled':>10}"]
    for g, info in record["graphs"].items():
        for o, e in info["outputs"].items():
            lines.append(f"{g:<12} {o:<24} {e['max_abs']:>16.3e} {e['ref_max_abs']:>12.3e} {e['scaled']:>10.3e}")
        fp32 = ", ".join(f"{k}×{v}" for k, v in sorted(info["conversion"]["fp32_nodes"].items()))
        split = ", ".join(f"{k}×{v}" for k, v in sorted(info["conversion"].get("decomposed", {}).items()))
        lines.append(f"{'':<12} FP16 nodes {info['conversion']['fp16_nodes']}, FP32 islands: {fp32 or 'none'}"
                     + (f", decomposed: {split}" if split else ""))
    lines.append(f"{'step':>4} {'max |a16-a32| (policy units)':>28} {'normalised':>12}")
    lines += [f"{r['step']:>4} {r['max_abs']:>28.3e} {r['max_abs_normalized']:>12.3e}" for r in record["steps"]]
    lines.append(f"{'PASS' if record['ok'] else 'FAIL'} at tolerance {record['tolerance']:g}")
    return "\n".join(lines)


def run_preflight(path: str | Path, steps: int = 8, tolerance: float = 0.02, seed: int = 0) -> int:
    """Command-line flavour of `preflight`: table on stdout, progress on stderr; exit 0 pass, 1 fail (errors raise)."""
    record = preflight(path, steps, tolerance, seed, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_report(record))
    return 0 if record["ok"] else 1

