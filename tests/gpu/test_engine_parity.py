"""TensorRT engines for every bundled package, FP32 and FP16, vs ONNX Runtime on the CPU. Needs TensorRT and a GPU.

Parity is judged like the FP16 preflight (scaled error max |trt - ort| / max(1, max |ort|)) at the package's own
tolerances: the export tolerance for FP32, the preflight's for FP16. Also: the async executor on its worker
thread, both CUDA bindings, and device memory given back by close() (sessions, and runners from load_policy).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import edge
from edge.robot.executors import AsyncExecutor
from edge.runtime.backends.cuda_memory import cuda_memory
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.backends.tensorrt import TensorRTBackend
from edge.runtime.backends.trt_builder import build_engines
from edge.runtime.package import load_package
from edge.runtime.policies import runner_class
from export.fp16.preflight import preflight

BUNDLED = ["demo_act", "demo_diffusion", "demo_vqbet"]


def built(bundled_copy, name: str, precision: str):
    path = bundled_copy(name)
    preflight(path, steps=2, progress=lambda _m: None)
    package = load_package(path)
    build_engines(package, precision, report=print)
    return package


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", BUNDLED)
def test_engine_matches_onnxruntime(tensorrt_gpu, bundled_copy, name, precision):
    package = built(bundled_copy, name, precision)
    tolerance = package.manifest.validation.tolerance if precision == "fp32" else \
        package.manifest.fp16_preflight.tolerance
    trt_backend, ort_backend = TensorRTBackend(precision=precision), OnnxRuntimeBackend(["CPUExecutionProvider"])
    for graph in package.manifest.graphs:
        with trt_backend.load(package, graph) as trt_session:
            ort_session = ort_backend.load(package, graph)
            for feeds in package.graph_samples(graph):
                ref, got = ort_session.run(feeds), trt_session.run(feeds)
                for out, expected in ref.items():
                    err = float(np.max(np.abs(got[out] - expected))) / max(1.0, float(np.max(np.abs(expected))))
                    assert err <= tolerance, f"{name}/{graph}/{out} {precision}: {err:.3g} > {tolerance}"
            feeds = package.graph_samples(graph)[0]
            times = []
            for i in range(60):
                t0 = time.perf_counter()
                trt_session.run(feeds)
                times.append(time.perf_counter() - t0)
            print(f"{name}/{graph} {precision}: median {np.median(times[10:]) * 1e3:.2f} ms on {trt_backend.describe()}")


@pytest.mark.parametrize("library", ["cuda-python", "pycuda"])
def test_async_executor_on_its_worker_thread(tensorrt_gpu, bundled_copy, library):
    package = built(bundled_copy, "demo_act", "fp32")
    try:
        backend = TensorRTBackend(precision="fp32", cuda=library)
    except edge.BackendError as exc:
        pytest.skip(str(exc))
    policy = runner_class(package.manifest.policy_type)(package, backend)
    reference = edge.load_policy(package.path, backend="onnxruntime")
    observation = {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32)
                   for i in package.manifest.inputs}
    executor = AsyncExecutor(policy)
    try:
        actions = []
        for tick in range(12):
            actions.append(executor.step(observation, tick).action)
            time.sleep(0.02)
    finally:
        executor.close()
    assert all(a is not None and np.all(np.isfinite(a)) for a in actions[-5:])
    expected = reference.predict_action_chunk(observation)
    np.testing.assert_allclose(policy.predict_action_chunk(observation), expected, atol=1e-3, rtol=1e-3)


def test_close_gives_device_memory_back(tensorrt_gpu, bundled_copy):
    package = built(bundled_copy, "demo_vqbet", "fp32")
    backend = TensorRTBackend(precision="fp32")
    memory = cuda_memory()  # the same device; free memory is counted device-wide
    with memory.activate():
        before = memory.free_bytes()
    sessions = [backend.load(package, g) for g in package.manifest.graphs]
    with memory.activate():
        held = before - memory.free_bytes()
    for session in sessions:
        session.close()
    with memory.activate():
        after = memory.free_bytes()
    assert held > 0 and before - after < max(8 << 20, held // 10), (before, held, after)
    with pytest.raises(edge.BackendError, match="closed"):
        sessions[0].run(package.graph_samples(sessions[0].name)[0])


def test_runner_closes_what_load_policy_made(tensorrt_gpu, bundled_copy):
    """`with edge.load_policy(...)` closes the sessions and the backend it made: the device memory comes back."""
    package = built(bundled_copy, "demo_vqbet", "fp32")
    observation = {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32)
                   for i in package.manifest.inputs}
    memory = cuda_memory()
    with memory.activate():
        before = memory.free_bytes()
    with edge.load_policy(package.path, backend="tensorrt") as policy:
        policy.select_action(observation)
        with memory.activate():
            held = before - memory.free_bytes()
    with memory.activate():
        after = memory.free_bytes()
    assert held > 0 and before - after < max(8 << 20, held // 10), (before, held, after)
    with pytest.raises(edge.EdgeError, match="closed"):
        policy.select_action(observation)


def test_runs_do_not_leak_into_each_other(tensorrt_gpu, bundled_copy):
    """Each run copies all its feeds in: a run after a different one gives the first one's result again."""
    package = built(bundled_copy, "demo_diffusion", "fp32")
    samples = package.graph_samples("denoiser")
    with TensorRTBackend(precision="fp32").load(package, "denoiser") as session:
        first = session.run(samples[0])["model_output"]
        session.run({k: v + 1 for k, v in samples[0].items()})
        np.testing.assert_array_equal(session.run(samples[0])["model_output"], first)
