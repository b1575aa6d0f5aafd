"""Serving batch graphs (edge-export --serve-batch): per-chunk compute of B rows one after another vs one batch-B run.

What `edge serve` computes for a batch of B rows Triton formed, without Triton: `ServedPolicy.plan` on the batch
graphs against the same rows through `plan_window` on the batch-1 graphs, same runner, same ONNX Runtime threads
(edge's defaults), B = 2, 4, 8, best of --repeats. Cases: the bundled demo ACT, Diffusion and VQ-BeT (their checkpoint
configurations with random weights, so the compute is the demo's: the trained checkpoints are not in the
repository) and the default-size Diffusion on the 6-servo arm with UniPC-4 (bench_serve.py's). The machine's limit
per chunk (benchmarks/roofline.py: FLOPs over the measured sgemm rate, or weight bytes over the measured read
bandwidth, whichever is slower) says how far batching could go here.

    python benchmarks/bench_batching.py [--repeats 3] [--no-write]

Builds the packages with torch on first use (build/bench_defaults, git-ignored).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import publish  # noqa: E402
from benchmarks.default_models import ARM_MODELS, DefaultModel, ensure_package  # noqa: E402
from benchmarks.roofline import graph_work, measure  # noqa: E402
from edge.option_types import count  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402

SIZES = (2, 4, 8)
DATA = ROOT / "edge" / "data"


def demo_model(name: str) -> DefaultModel:
    """A bundled demo package's checkpoint configuration (random weights: the same compute as the demo)."""
    config = load_package(DATA / f"demo_{name}").manifest.source.config
    return DefaultModel(f"demo_{name}_size", f"demo {name} configuration", config)


CASES = [("demo ACT", lambda: demo_model("act"), {}),
         ("demo Diffusion (DDIM-10)", lambda: demo_model("diffusion"), {}),
         ("demo VQ-BeT", lambda: demo_model("vqbet"), {}),
         ("default Diffusion on the arm (UniPC-4)", lambda: ARM_MODELS["diffusion_arm"],
          {"sampler": "unipc", "num_inference_steps": 4})]


def rows(served, n: int, rng: np.random.Generator) -> list:  # noqa: ANN001
    """n request rows: random normalised windows, nothing committed, distinct seeds."""
    spec = served.spec
    request = {t.name: rng.standard_normal((n, *t.shape)).astype(t.dtype) for t in spec.inputs}
    request["committed_rows"][:] = 0
    request["delay"][:] = 0
    request["seed"][:, 0] = np.arange(n)
    return [served.row(request, i) for i in range(n)]


def best_ms(runs: list, repeats: int) -> list[float]:  # noqa: ANN001
    """Best time in ms of each callable, the callables run in turn `repeats` times (a drifting machine slows all)."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, fn in enumerate(runs):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return [b * 1e3 for b in best]


def chunk_work(served, batch: int) -> tuple[float, int]:  # noqa: ANN001
    """FLOPs and weight bytes of one chunk at batch `batch` (1: the package's graphs), from the graph files."""
    runner = served.runner
    package = runner.package
    root, graphs = package.path, package.manifest.graphs
    if batch > 1:
        from edge.runtime.package.batches import SERVE_DIR, load_batches

        root = package.path / SERVE_DIR
        graphs = next(b.graphs for b in load_batches(package).batches if b.batch == batch)
    calls = {name: 1 for name in runner.graphs}
    if "denoiser" in calls and getattr(runner, "fused_graph", None) is None:
        calls["denoiser"] = runner.scheduler.num_inference_steps
    flops, weights = 0.0, 0
    for name, k in calls.items():
        work = graph_work(root / graphs[name].file)
        flops, weights = flops + k * work.flops, weights + k * work.weight_bytes  # every call reads its weights
    return flops, weights


def bench_case(title: str, model: DefaultModel, options: dict, repeats: int, log) -> list[str]:  # noqa: ANN001
    from edge.runtime.backends.onnxruntime import loop_free_cores
    from edge.serve.model import ServedPolicy

    package = ensure_package(model, log, SIZES)
    log(f"{title}: loading {package}")
    served = ServedPolicy(package, backend="onnxruntime", **options)
    try:
        limits = measure(loop_free_cores())  # just before the case: the machine is shared and drifts
        log(f"{title}: sgemm {limits.sgemm_gflops:.1f} GFLOP/s, read {limits.read_gbps:.1f} GB/s, "
            f"{limits.threads} thread(s)")
        threads = served.runner.backend.describe()
        flops1, weights1 = chunk_work(served, 1)
        out = []
        for b in SIZES:
            batch = rows(served, b, np.random.default_rng(b))
            one_by_one, batched = best_ms([lambda: [served.runner.plan_window(*r) for r in batch],
                                           lambda: served.plan(batch)], repeats)
            flops, weights = chunk_work(served, b)
            limit_1 = limits.limit_ms(flops1, weights1)
            limit_b = limits.limit_ms(flops, weights) / b
            log(f"{title} B={b}: {one_by_one / b:.2f} vs {batched / b:.2f} ms a chunk")
            out.append(f"| {title} | {b} | {one_by_one / b:.2f} | {batched / b:.2f} | {one_by_one / batched:.2f}x | "
                       f"{flops1 / 1e9:.3f} | {weights1 / 1e6:.0f} | {limit_1:.2f} | {limit_b:.2f} | "
                       f"{limits.sgemm_gflops:.0f} / {limits.read_gbps:.1f} |")
        log(f"{title}: {threads}")
        return out
    finally:
        served.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=count, default=3, help="runs per measurement, the best is kept (default 3)")
    ap.add_argument("--no-write", action="store_true", help="print the table only, leave RESULTS.md alone")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    table = []
    for title, model, options in CASES:
        table += bench_case(title, model(), options, args.repeats, log)
    body = "\n".join([
        "Per-chunk compute of a batch of B rows as `edge serve` runs it (ServedPolicy.plan): one after another on "
        "the batch-1 graphs vs one run of the batch-B graphs (`edge-export --serve-batch 2,4,8`), same runner and "
        "ONNX Runtime threads (edge's defaults), the two run in turn, best of "
        f"{args.repeats}. Limit: the machine's floor per chunk (benchmarks/roofline.py: max(FLOPs / sgemm rate, "
        "weight bytes read / bandwidth), every graph call reading its weights), from the sgemm rate and read "
        "bandwidth measured just before each policy, at batch 1 and for a chunk of a batch-B run. Demo rows: the "
        "bundled demos' configurations with random weights (same compute). CPU only; batching on a GPU is "
        "unverified.",
        "",
        "| policy | B | rows one after another, ms/chunk | batch graph, ms/chunk | speed-up | GFLOP/chunk | "
        "MB weights read/chunk | limit ms/chunk at B=1 | limit ms/chunk at B | sgemm GFLOP/s / read GB/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *table,
    ])
    publish("serve_batching", "Serving: batch graphs vs rows one after another", "benchmarks/bench_batching.py",
            body, write=not args.no_write)


if __name__ == "__main__":
    main()
