"""Per-chunk latency of the bundled policies on whatever this machine has, side by side: ONNX Runtime CPU, ONNX
Runtime's CUDA execution provider, TensorRT FP32 and TensorRT FP16 engines (built here into a temporary copy).

Run: python benchmarks/bench_gpu.py [--repeats 50] [--no-write]
A row that cannot run here says why instead of a number; RESULTS.md gets a section only when a GPU row ran.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import write_section  # noqa: E402
from edge.errors import EdgeError  # noqa: E402
from edge.runtime.backends.base import Backend  # noqa: E402
from edge.runtime.backends.onnxruntime import CPU_EP, CUDA_EP, OnnxRuntimeBackend  # noqa: E402
from edge.runtime.package import PolicyPackage, load_package  # noqa: E402
from edge.runtime.policies import FAMILIES, runner_class  # noqa: E402
from edge.runtime.timing import call_times_ms  # noqa: E402

BUNDLED = Path(__file__).resolve().parents[1] / "edge" / "data"
PACKAGES = tuple(f"demo_{family}" for family in FAMILIES)


def tensorrt(precision: str) -> Callable[[PolicyPackage], Backend]:
    """Build engines for `precision` into the package copy, then a TensorRT backend that runs them."""
    def make(package: PolicyPackage) -> Backend:
        from edge.runtime.backends.tensorrt import TensorRTBackend
        from edge.runtime.backends.trt_builder import build_engines

        if precision == "fp16":
            from export.fp16.preflight import preflight
            preflight(package.path, steps=2, progress=lambda _m: None)
            package = load_package(package.path)
        build_engines(package, precision, report=lambda _m: None)
        return TensorRTBackend(precision=precision)
    return make


def cuda_ep(package: PolicyPackage) -> Backend:
    backend = OnnxRuntimeBackend([CUDA_EP, CPU_EP], precision="fp32")
    if CUDA_EP not in backend._ort.get_available_providers():
        raise EdgeError("this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    return backend


ROWS: dict[str, Callable[[PolicyPackage], Backend]] = {
    "ONNX Runtime CPU": lambda package: OnnxRuntimeBackend([CPU_EP], precision="fp32"),
    "ONNX Runtime CUDA EP": cuda_ep,
    "TensorRT FP32": tensorrt("fp32"),
    "TensorRT FP16": tensorrt("fp16"),
}


def chunk_latency(package: PolicyPackage, backend: Backend, repeats: int) -> np.ndarray:
    runner = runner_class(package.manifest.policy_type)(package, backend)
    rng = np.random.default_rng(0)
    obs = {i.name: (rng.integers(0, 256, i.shape, dtype=np.uint8) if i.kind == "image"
                    else rng.standard_normal(i.shape).astype(np.float32)) for i in package.manifest.inputs}
    return call_times_ms(lambda: runner.predict_action_chunk(obs), repeats, warmup=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    cells: dict[str, dict[str, str]] = {row: {} for row in ROWS}
    gpu_ran = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in PACKAGES:
            for row, make in ROWS.items():
                path = Path(shutil.copytree(BUNDLED / name, Path(tmp) / f"{name}-{row.replace(' ', '_')}"))
                try:
                    backend = make(load_package(path))
                    times = chunk_latency(load_package(path), backend, args.repeats)
                    cells[row][name] = f"{np.median(times):.2f} / {np.percentile(times, 99):.2f}"
                    gpu_ran |= row != "ONNX Runtime CPU"
                except EdgeError as exc:
                    cells[row][name] = f"n/a: {str(exc).split(':')[0]}"
    table = "\n".join([
        f"Per-chunk latency in ms, p50 / p99 over {args.repeats} calls after 10 warm-up calls; bundled packages "
        "(diffusion: its DDIM steps per chunk). n/a: not available on this machine, with the reason.",
        "",
        f"| backend | {' | '.join(PACKAGES)} |",
        f"|---|{'---|' * len(PACKAGES)}",
        *[f"| {row} | {' | '.join(cells[row][p] for p in PACKAGES)} |" for row in ROWS],
    ])
    print(table)
    if gpu_ran and not args.no_write:
        write_section("gpu", "Per-chunk latency on the GPU backends", "benchmarks/bench_gpu.py", table)


if __name__ == "__main__":
    main()
