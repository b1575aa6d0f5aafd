"""Where the time goes: ONNX Runtime's per-node profile of the default-size graphs, against the machine's limits.

    python benchmarks/profile_nodes.py [--runs 5] [--no-write]

For the graphs that bound each default model's chunk (the Diffusion U-Net step, VQ-BeT's GPT and encoder, ACT),
as the runtime loads them (benchmarks/default_models.py packages, the runtime's threads): ONNX Runtime's own
profiler, per operator type, the time per call, the weight bytes and FLOPs its nodes handle and the rates that
gives. Beside it, the same MatMul shapes alone in ONNX Runtime (MLAS), from one row (a GEMV) up: how fast its
kernels stream a weight matrix that does not fit in the caches at the row counts these graphs have. Writes the
"profile" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.default_models import MODELS, ensure_package  # noqa: E402
from benchmarks.roofline import best_seconds, float_value, measure, probe_session  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402

GRAPHS = (("diffusion", "denoiser"), ("vqbet", "policy"), ("vqbet", "encoder"), ("act", "act"))
SHAPES = ((10240, 2048), (20480, 1024))  # K x N of the U-Net's 2048- and up-path 1024-channel convolutions
ROWS = (1, 2, 4, 8, 16, 32)


PRODUCTS = ("MatMul", "Gemm", "FusedMatMul")
CONVOLUTIONS = ("Conv", "FusedConv", "NchwcConv")


def _work(op: str, args: dict, weights: list[list[int]]) -> tuple[float, float]:
    """(FLOPs, weight bytes) of one node: its constant inputs' dims from the optimised model (the profile lists a
    prepacked weight no more) and its activations' shapes from the profile."""
    shapes = [next(iter(s.values())) for s in args.get("input_type_shape", [])]
    outs = [next(iter(s.values())) for s in args.get("output_type_shape", [])]
    weight_bytes = 4.0 * sum(float(np.prod(w)) for w in weights)
    if op in PRODUCTS and shapes and outs:
        return 2.0 * float(np.prod(outs[0])) * shapes[0][-1], weight_bytes
    if op in CONVOLUTIONS and weights and outs:
        return 2.0 * float(np.prod(outs[0])) * float(np.prod(weights[0][1:])), weight_bytes
    return 0.0, weight_bytes


def profile(path: Path, threads: int, runs: int) -> dict[str, dict[str, float]]:
    """Per operator type: ms per call, nodes, weight bytes and FLOPs per call (from ONNX Runtime's profile)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edge-profile-") as tmp:
        opts = ort.SessionOptions()  # as the runtime's backend sets them up, plus the profiler
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        optimised = onnx.load(str(Path(tmp) / "optimised.onnx"), load_external_data=False).graph
        feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)
                 for i in session.get_inputs()}
        for _ in range(2 + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    dims = {i.name: list(i.dims) for i in optimised.initializer if i.data_type == onnx.TensorProto.FLOAT}
    weights = {n.name: [dims[x] for x in n.input if x in dims and len(dims[x]) >= 2] for n in optimised.node}
    per_run: dict[str, list] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_run[e["name"][: -len("_kernel_time")]].append(e)
    ops: dict[str, dict[str, float]] = defaultdict(lambda: {"ms": 0.0, "nodes": 0, "bytes": 0.0, "flops": 0.0})
    for name, runs_of_node in per_run.items():
        timed = runs_of_node[2:]  # the warm-up runs are left out
        op = timed[-1]["args"]["op_name"]
        flops, weight_bytes = _work(op, timed[-1]["args"], weights.get(name, []))
        ops[op]["ms"] += np.median([x["dur"] for x in timed]) / 1e3
        ops[op]["nodes"] += 1
        ops[op]["bytes"] += weight_bytes
        ops[op]["flops"] += flops
    return dict(ops)


def mlas_rows(threads: int) -> list[tuple[int, int, int, float, float]]:
    """(K, N, rows, GB/s of weights, GFLOP/s) for a MatMul with a constant K x N weight, alone in ONNX Runtime."""
    from onnx import helper, numpy_helper

    out = []
    rng = np.random.default_rng(0)
    for k, n in SHAPES:
        w = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
        for m in ROWS:
            s = probe_session([helper.make_node("MatMul", ["x", "w"], ["y"])], [w], [float_value("x", [m, k])],
                              [float_value("y", [m, n])], threads)
            x = rng.standard_normal((m, k), dtype=np.float32)
            t = best_seconds(lambda: s.run(None, {"x": x}), 10)
            out.append((k, n, m, 4 * k * n / t / 1e9, 2 * m * k * n / t / 1e9))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    load_before = os.getloadavg()[0]
    sections = []
    for family, graph in GRAPHS:
        package = load_package(ensure_package(MODELS[family], log))
        path = package.graph_path(graph)
        threads = OnnxRuntimeBackend().graph_threads(path)
        limits = measure(threads)
        log(f"{family}/{graph}: profiling on {threads} thread(s)")
        ops = profile(path, threads, args.runs)
        total = sum(o["ms"] for o in ops.values())
        lines = [f"**{family} `{graph}`** ({threads} thread(s); limits measured now: {limits.read_gbps:.1f} GB/s, "
                 f"{limits.sgemm_gflops:.0f} GFLOP/s): {total:.2f} ms of kernel time per call.", "",
                 "| operator | nodes | ms per call | share | weights (MB) | GFLOP | GB/s | GFLOP/s | its limit (ms) |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for op, o in sorted(ops.items(), key=lambda kv: -kv[1]["ms"])[:8]:
            seconds = o["ms"] / 1e3
            limit = limits.limit_ms(o["flops"], o["bytes"])
            lines.append(f"| {op} | {o['nodes']} | {o['ms']:.2f} | {100 * o['ms'] / total:.0f}% | "
                         f"{o['bytes'] / 1e6:.1f} | {o['flops'] / 1e9:.3f} | "
                         f"{o['bytes'] / seconds / 1e9 if seconds else 0:.1f} | "
                         f"{o['flops'] / seconds / 1e9 if seconds else 0:.0f} | {limit:.2f} |")
        sections.append("\n".join(lines))
    threads = OnnxRuntimeBackend().graph_threads(ensure_package(MODELS["diffusion"], log) / "denoiser.onnx")
    rows = mlas_rows(threads)
    lines = [f"ONNX Runtime MatMul alone, a constant K x N float32 weight (prepacked), {threads} thread(s), best of "
             "10: the rate at which it streams the weight and the FLOP rate, by the number of rows M (the U-Net's "
             "sequence length is 16, 8, 4 at its three levels; VQ-BeT's GPT sees a few tokens).", "",
             "| K x N | " + " | ".join(f"M={m}" for m in ROWS) + " |",
             "|---|" + "---:|" * len(ROWS)]
    for k, n in SHAPES:
        cells = [f"{gbs:.1f} GB/s, {gfs:.0f} GFLOP/s" for kk, nn, _, gbs, gfs in rows if (kk, nn) == (k, n)]
        lines.append(f"| {k} x {n} | " + " | ".join(cells) + " |")
    sections.append("\n".join(lines))
    body = "\n\n".join([f"1-minute load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after. Kernel "
                        "times come from ONNX Runtime's profiler (which adds a few microseconds per node) on its "
                        "optimised graph (MatMul + Add fused into Gemm); weights are the products' and convolutions' "
                        "weight operands, FLOPs 2 per multiply-add; a row's limit is max(FLOPs / sgemm rate, weight "
                        "bytes / bandwidth).",
                        *sections])
    from benchmarks._results import publish
    publish("profile", "Where the time goes at default sizes (per-node profile)",
            "benchmarks/profile_nodes.py", body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
