"""TensorRT engines vs ONNX Runtime (CPU, FP32) for every policy family, plus latency. Needs TensorRT + GPU.

Runs `edge build` (FP32, then FP16 after the FP16 preflight) into a copy of each exported fixture,
compares every graph on the package's validation samples, and prints median latencies.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.backends.tensorrt import TensorRTBackend, build_engines
from edge.package import load_package
from export.fp16 import graph_samples, preflight

CASES = ["act_env", "act_cam", "diffusion_cam", "vqbet_cam"]
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}  # scaled error: max |trt - ort| / max(1, max |ort|)


@pytest.fixture
def gpu_package(tensorrt_gpu, export_fixture, tmp_path):
    def make(case: str):
        path = shutil.copytree(export_fixture(case), tmp_path / case)
        preflight(path, steps=2, progress=lambda _m: None)
        return load_package(path)
    return make


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES)
def test_engine_matches_onnxruntime(gpu_package, case, precision):
    package = gpu_package(case)
    build_engines(package, precision, report=print)
    trt_backend, ort_backend = TensorRTBackend(precision=precision), OnnxRuntimeBackend(["CPUExecutionProvider"])
    for graph in package.manifest.graphs:
        trt_session, ort_session = trt_backend.load(package, graph), ort_backend.load(package, graph)
        for feeds in graph_samples(package, graph):
            ref, got = ort_session.run(feeds), trt_session.run(feeds)
            for name, expected in ref.items():
                err = float(np.max(np.abs(got[name] - expected))) / max(1.0, float(np.max(np.abs(expected))))
                assert err <= TOLERANCE[precision], f"{case}/{graph}/{name} {precision}: {err:.3g}"
        feeds = graph_samples(package, graph)[0]
        for _ in range(10):
            trt_session.run(feeds)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            trt_session.run(feeds)
            times.append(time.perf_counter() - t0)
        print(f"{case}/{graph} {precision}: median {np.median(times) * 1e3:.2f} ms on {trt_backend.describe()}")


def test_device_resident_run(gpu_package):
    """run_device with the output fetched equals run; a bound ping-pong input buffer is used as given."""
    package = gpu_package("diffusion_cam")
    build_engines(package, "fp32", report=print)
    session = TensorRTBackend(precision="fp32").load(package, "denoiser")
    feeds = graph_samples(package, "denoiser")[0]
    expected = session.run(feeds)["model_output"]
    other = session.alloc_like("sample")
    session.copy_device(other, session.device_buffer("sample"))  # the sample fed above, copied on the GPU
    session.bind("sample", other)
    rest = {k: v for k, v in feeds.items() if k != "sample"}
    np.testing.assert_array_equal(session.run_device(rest, ["model_output"])["model_output"], expected)
    session.bind("sample", None)
