"""The FP16 preflight: convert every graph, check and measure the copies, then record them in the package.

The copies are checked (ONNX checker, TensorRT 10.3 operator support) in a staging folder and measured on the
CPU with FP16 activations simulated and every FP16-held tensor range-screened (numerics.py), on the package's
validation samples and through a few policy steps; only then are they moved to `fp16/<graph>.onnx`, the numbers
going to the manifest's `fp16_preflight` field: an error at any step leaves the package untouched. Every TensorRT >= 10.0 builds the same files as strongly typed networks for
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
from export.fp16.convert import FP16_MAX, ConversionReport, Fp16Plan, convert_with_plan
from export.fp16.numerics import RANGE_HEADROOM, PreflightBackend, RangeScreen, Simulated

FP16_DIR = "fp16"
ACTIVATIONS = "simulated: FP16-rounded weights, Cast(fp32->fp16)->Cast(fp16->fp32) after every FP16 node"


def stage_fp16_graphs(package: PolicyPackage, staging: Path) -> tuple[dict[str, tuple[str, str]],
                                                                          dict[str, ConversionReport],
                                                                          dict[str, Fp16Plan]]:
    """Convert every graph, refuse one TensorRT 10.3 would not parse, save it under `staging` (a folder inside
    the package, renamed to fp16/ at the end); returns {graph: (file relative to the package, sha256)}, the
    conversion reports and the plans (where each FP16 graph holds FP16 values)."""
    files, reports, plans = {}, {}, {}
    for name in package.manifest.graphs:
        model, reports[name], plans[name] = convert_with_plan(onnx.load(str(package.graph_path(name))))
        problems = check_model(model, name)
        if problems:
            raise Fp16Error(f"the FP16 graph would not parse on TensorRT: {'; '.join(map(str, problems))}")
        path = staging / f"{name}.onnx"
        onnx.save(model, str(path))
        files[name] = (str(path.relative_to(package.path)), sha256_file(path))
    return files, reports, plans


def measure_graph(name: str, plan: Fp16Plan, samples: list[dict[str, Any]]) -> tuple[RangeScreen, Simulated,
                                                                                     dict[str, Any]]:
    """One graph on the validation samples: the range screen (which gives the FP32 reference) and the simulated FP16
    graph; returns both (the policy steps run on them next) and the per-output errors."""
    screen, simulated = RangeScreen(plan, name), Simulated(plan, name)
    references = [screen.run(feeds) for feeds in samples]
    errors = compare_graph(references, simulated.run, samples)
    return screen, simulated, {o: dataclasses.asdict(e) for o, e in errors.items()}


def preflight(path: str | Path, steps: int = 8, tolerance: float = 0.02, seed: int = 0,
              progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Convert graphs, measure FP16 vs FP32 on CPU ONNX Runtime, then write the FP16 graphs and the manifest record.

    `ok` is true when every output's scaled error and every step's normalised action error (FP16 activations
    simulated) is within `tolerance` and no FP16-held tensor exceeds FP16's range divided by RANGE_HEADROOM.
    Nothing in the package changes unless every step ran (a failed tolerance is recorded, an error is not). The FP32 graphs are not touched, so their sha256 in the manifest stays valid.
    """
    import onnxruntime

    package = load_package(path)
    t0 = time.monotonic()
    samples = {name: package.graph_samples(name) for name in package.manifest.graphs}
    with staged_directory(package.path / FP16_DIR) as staging:  # replaces fp16/ only once every step ran
        progress(f"converting {len(package.manifest.graphs)} graph(s) to FP16")
        files, reports, plans = stage_fp16_graphs(package, staging)
        graphs: dict[str, Any] = {}
        screens: dict[str, RangeScreen] = {}
        simulated: dict[str, Simulated] = {}
        for name, (rel, sha) in files.items():
            progress(f"graph {name!r}: simulated FP16 vs FP32 on the validation samples, FP16 ranges screened "
                     "(ONNX Runtime CPU)")
            screens[name], simulated[name], outputs = measure_graph(name, plans[name], samples[name])
            graphs[name] = {"file": rel, "sha256": sha, "conversion": dataclasses.asdict(reports[name]),
                            "outputs": outputs}
        plans.clear()  # the rewritten FP32 models: memory the steps do not need
        progress(f"running the policy {steps} steps with simulated FP16 vs FP32 graphs")
        rows = policy_steps(package, steps, seed, PreflightBackend(screens), PreflightBackend(simulated))
    for name, info in graphs.items():
        info["file"] = f"{FP16_DIR}/{name}.onnx"
        info["range"] = screens[name].summary(RANGE_HEADROOM)
    worst_output = max(e["scaled"] for g in graphs.values() for e in g["outputs"].values())
    worst_step = max((r["max_abs_normalized"] for r in rows), default=0.0)
    in_range = all(not info["range"]["over_limit_count"] for info in graphs.values())
    record = {"ok": bool(worst_output <= tolerance and worst_step <= tolerance and in_range), "tolerance": tolerance,
              "worst_output_scaled_error": worst_output, "worst_step_normalized_action_error": worst_step,
              "graphs": graphs, "steps": rows, "seed": seed, "onnxruntime": onnxruntime.__version__,
              "provider": "CPUExecutionProvider", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "activations": ACTIVATIONS, "range_headroom": RANGE_HEADROOM}
    package.manifest.fp16_preflight = parse_field(Fp16Preflight, record, "fp16_preflight")
    write_manifest(package.path, package.manifest)
    for line in range_problems(record):
        progress(line)
    progress(f"FP16 preflight {'passed' if record['ok'] else 'FAILED'} in {time.monotonic() - t0:.1f} s")
    return record


def range_problems(record: dict[str, Any]) -> list[str]:
    """One line per tensor beyond FP16's range with the record's headroom, naming tensor, node and op."""
    lines = []
    for g, info in record["graphs"].items():
        r = info.get("range")
        for t in (r or {}).get("over_limit", []):
            lines.append(f"graph {g!r}: tensor {t['tensor']!r} (node {t['node']!r}, {t['op']}) reaches max |x| "
                         f"{t['max_abs']:.3g}, beyond FP16's {FP16_MAX:g} / {record['range_headroom']:g} headroom "
                         f"= {r['limit']:g}")
        if r and r["over_limit_count"] > len(r["over_limit"]):
            lines.append(f"graph {g!r}: {r['over_limit_count'] - len(r['over_limit'])} more tensor(s) beyond the limit")
    return lines


def format_report(record: dict[str, Any]) -> str:
    """The preflight record as a plain-text table (per output, then per policy step)."""
    lines = [f"{'graph':<12} {'output':<24} {'max |fp16-fp32|':>16} {'max |fp32|':>12} {'scaled':>10}"]
    for g, info in record["graphs"].items():
        for o, e in info["outputs"].items():
            lines.append(f"{g:<12} {o:<24} {e['max_abs']:>16.3e} {e['ref_max_abs']:>12.3e} {e['scaled']:>10.3e}")
        fp32 = ", ".join(f"{k}×{v}" for k, v in sorted(info["conversion"]["fp32_nodes"].items()))
        split = ", ".join(f"{k}×{v}" for k, v in sorted(info["conversion"].get("decomposed", {}).items()))
        folded = ", ".join(f"{k}×{v}" for k, v in sorted(info["conversion"].get("folded", {}).items()))
        lines.append(f"{'':<12} FP16 nodes {info['conversion']['fp16_nodes']}, FP32 islands: {fp32 or 'none'}"
                     + (f", decomposed: {split}" if split else "") + (f", folded: {folded}" if folded else ""))
        r = info.get("range")
        if r:
            top = r["largest"]
            lines.append(f"{'':<12} range: {r['tensors']} FP16 tensors over {r['runs']} runs, largest "
                         + (f"{top['max_abs']:.3g} ({top['tensor']})" if top else "none")
                         + f", limit {r['limit']:g}, {r['over_limit_count']} over; "
                         f"{100 * r['below_normal_share']:.2f}% of non-zero values below FP16's smallest normal")
    lines.append(f"{'step':>4} {'max |a16-a32| (policy units)':>28} {'normalised':>12}")
    lines += [f"{r['step']:>4} {r['max_abs']:>28.3e} {r['max_abs_normalized']:>12.3e}" for r in record["steps"]]
    lines += range_problems(record)
    lines.append(f"{'PASS' if record['ok'] else 'FAIL'} at tolerance {record['tolerance']:g}"
                 + (f", range headroom {record['range_headroom']:g}x" if record.get("range_headroom") else ""))
    return "\n".join(lines)


def run_preflight(path: str | Path, steps: int = 8, tolerance: float = 0.02, seed: int = 0) -> int:
    """Command-line flavour of `preflight`: table on stdout, progress on stderr; exit 0 pass, 1 fail (errors raise)."""
    record = preflight(path, steps, tolerance, seed, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_report(record))
    return 0 if record["ok"] else 1

