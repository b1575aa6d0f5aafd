"""Backend choice and fallback with TensorRT / CUDA bindings really absent (fresh interpreters), `edge build`'s
flow against the API stub in tests/trt_backend/stubs, and ONNX Runtime's GPU provider options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.backends.onnxruntime import CPU_EP, CUDA_EP, TRT_EP, OnnxRuntimeBackend
from edge.package import load_package, sha256_file
from export.fp16 import preflight


def test_auto_falls_back_to_onnxruntime_cpu_and_says_why(package_copy, run_python):
    path = package_copy("act_env")
    proc = run_python("import logging, edge\nlogging.basicConfig(level=logging.INFO)\n"
                      f"policy = edge.load_policy({str(path)!r})\nprint(policy.backend.describe())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("auto -> onnxruntime") and "CPUExecutionProvider, fp32" in proc.stdout
    assert "backend auto -> onnxruntime" in proc.stderr and "skipped tensorrt: TensorRT is not available" in proc.stderr


def test_tensorrt_backend_absent_names_what_to_install(run_python):
    proc = run_python("from edge.backends import get_backend\nget_backend('tensorrt')")
    assert proc.returncode == 1
    assert "BackendError: TensorRT is not available" in proc.stderr
    assert "python3-libnvinfer" in proc.stderr and "pip install tensorrt" in proc.stderr and "pycuda" in proc.stderr


def test_tensorrt_without_cuda_bindings_names_them(run_python):
    proc = run_python("from edge.backends import get_backend\nget_backend('tensorrt')", stubs=True,
                      block=("pycuda", "cuda"))
    assert proc.returncode == 1
    assert "no usable CUDA Python bindings" in proc.stderr and "pip install pycuda (or cuda-python)" in proc.stderr


def test_edge_build_without_tensorrt(package_copy, edge_cli):
    code, out = edge_cli("build", str(package_copy("act_env")))
    assert code == 2
    assert out.startswith("error: TensorRT is not available") and "pip install tensorrt" in out


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_edge_build_flow_with_api_stub(package_copy, tmp_path, run_python, edge_cli):
    path = package_copy("act_env")
    log = tmp_path / "trt.log"
    env = {"STUB_TRT_LOG": str(log)}
    code, out = edge_cli("build", str(path), stubs=True, block=("cuda",), env=env)
    assert code == 0, out
    assert "[1/1] act: building from act.onnx (FP32, TensorRT 10.3.0, Stub GPU)" in out and "Building engine" in out
    folder = path / "engines" / "trt10.3.0_stub-gpu_sm87_fp32"
    assert (folder / "act.engine").is_file() and (folder / "timing.cache").read_bytes() == b"+"
    assert read_log(log) == [{"onnx": str(path / "act.onnx"), "strongly_typed": False, "fp16_flag": False,
                              "timing_cache": 0}]

    code, out = edge_cli("build", str(path), stubs=True, block=("cuda",), env=env)
    assert code == 0 and "act: up to date" in out and len(read_log(log)) == 1  # not rebuilt

    proc = run_python(f"from edge.backends import select_backend\nfrom edge.package import load_package\n"
                      f"b, skipped = select_backend(load_package({str(path)!r}))\nprint(b.name, skipped)",
                      stubs=True, block=("cuda",))
    assert proc.stdout.strip() == "tensorrt []", proc.stderr

    (folder / "act.engine").write_bytes(b"corrupted")
    code, out = edge_cli("build", str(path), stubs=True, block=("cuda",), env=env)
    assert code == 2 and "changed after it was built" in out and "--rebuild" in out and len(read_log(log)) == 1
    proc = run_python(f"from edge.backends import select_backend\nfrom edge.package import load_package\n"
                      f"b, skipped = select_backend(load_package({str(path)!r}))\nprint(b.name, skipped)",
                      stubs=True, block=("cuda",))
    assert proc.stdout.startswith("onnxruntime") and "edge build" in proc.stdout  # stale: never used silently

    code, out = edge_cli("build", str(path), "--rebuild", stubs=True, block=("cuda",), env=env)
    assert code == 0 and "act: rebuilding" in out
    assert read_log(log)[-1]["timing_cache"] == 1  # the timing cache from the first build was loaded


@pytest.mark.parametrize("version, typed", [("10.3.0", False), ("10.12.0", True)])
def test_fp16_build_mode_by_version(package_copy, tmp_path, edge_cli, version, typed):
    path = package_copy("act_env")
    log = tmp_path / "trt.log"
    env = {"STUB_TRT_LOG": str(log), "STUB_TRT_VERSION": version}
    if typed:
        code, out = edge_cli("build", str(path), "--fp16", stubs=True, block=("cuda",), env=env)
        assert code == 2 and "python -m export.fp16" in out and "warning: this package has no passing FP16" in out
        preflight(path, steps=1, progress=lambda _m: None)
    code, out = edge_cli("build", str(path), "--fp16", stubs=True, block=("cuda",), env=env)
    assert code == 0, out
    onnx = path / ("fp16/act.onnx" if typed else "act.onnx")
    assert read_log(log) == [{"onnx": str(onnx), "strongly_typed": typed, "fp16_flag": not typed, "timing_cache": 0}]
    meta = json.loads((path / "engines" / f"trt{version}_stub-gpu_sm87_fp16" / "act.json").read_text())
    assert meta["key"]["onnx_sha256"] == sha256_file(onnx) and meta["mode"] == (
        "strongly typed FP16 ONNX" if typed else "FP16 builder flag")


def test_onnxruntime_provider_options_and_precision(package_copy):
    package = load_package(package_copy("act_env"))
    trt_ep = OnnxRuntimeBackend([TRT_EP, CUDA_EP, CPU_EP])
    cuda_ep = OnnxRuntimeBackend([CUDA_EP, CPU_EP])
    cpu = OnnxRuntimeBackend([CPU_EP])
    assert [b.precision_for(package) for b in (trt_ep, cuda_ep, cpu)] == ["fp32"] * 3  # no preflight yet

    preflight(package.path, steps=1, progress=lambda _m: None)
    package = load_package(package.path)
    assert [b.precision_for(package) for b in (trt_ep, cuda_ep, cpu)] == ["fp16", "fp16", "fp32"]
    name, options = trt_ep._providers(package, fp16=True)[0]
    assert name == TRT_EP and options["trt_fp16_enable"] is True and options["trt_engine_cache_enable"] is True
    assert options["trt_engine_cache_path"] == str(package.path / "engines" / "ort-tensorrt")
    assert trt_ep._providers(package, fp16=True)[1:] == [CUDA_EP, CPU_EP]
    assert trt_ep.graph_file(package, "act", "fp16") == package.path / "act.onnx"  # the EP converts itself
    assert cuda_ep.graph_file(package, "act", "fp16") == package.path / "fp16" / "act.onnx"

    session = OnnxRuntimeBackend(precision="fp16").load(package, "act")  # the FP16 copy runs on the CPU too
    feeds = {t.name: np.zeros(t.shape, np.float32) for t in package.manifest.graphs["act"].inputs}
    assert session.run(feeds)["action"].dtype == np.float32


def test_unknown_backend_and_options():
    from edge.backends import get_backend
    from edge.errors import BackendError

    with pytest.raises(BackendError, match="choose one of"):
        get_backend("tvm")
    with pytest.raises(BackendError, match="takes no options"):
        get_backend("auto", precision="fp16")
    with pytest.raises(BackendError, match="unknown precision"):
        get_backend("onnxruntime", precision="int8")
