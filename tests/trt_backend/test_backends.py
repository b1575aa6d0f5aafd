"""Backend choice and fallback with TensorRT / CUDA bindings really absent (fresh interpreters), and ONNX Runtime's
GPU provider options. `edge build` and the engine session against TensorRT's real API: test_real_bindings.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.runtime.backends.onnxruntime import CPU_EP, CUDA_EP, TRT_EP, OnnxRuntimeBackend
from edge.runtime.package import load_package, sha256_file
from export.fp16.preflight import preflight


def test_auto_falls_back_to_onnxruntime_cpu_and_says_why(package_copy, run_python):
    path = package_copy("act_env")
    proc = run_python("import logging, edge\nlogging.basicConfig(level=logging.INFO)\n"
                      f"policy = edge.load_policy({str(path)!r})\nprint(policy.backend.describe())")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("auto -> onnxruntime") and "CPUExecutionProvider, fp32" in proc.stdout
    assert "backend auto -> onnxruntime" in proc.stderr and "skipped tensorrt: no engines in" in proc.stderr
    assert f"edge build {path}" in proc.stderr


def test_tensorrt_backend_absent_names_what_to_install(run_python):
    proc = run_python("from edge.runtime.backends import get_backend\nget_backend('tensorrt')")
    assert proc.returncode == 1
    assert "BackendError: TensorRT is not available" in proc.stderr
    assert "python3-libnvinfer" in proc.stderr and "pip install tensorrt" in proc.stderr and "pycuda" in proc.stderr


def test_tensorrt_without_cuda_bindings_names_them(run_python):
    proc = run_python("from edge.runtime.backends.cuda_memory import cuda_memory\ncuda_memory()", block=("pycuda", "cuda"))
    assert proc.returncode == 1
    assert "no usable CUDA Python bindings" in proc.stderr and "cuda-python>=12.6,<13" in proc.stderr


def test_auto_without_engines_loads_no_gpu_library(package_copy, run_python):
    """No engines on disk: auto goes to ONNX Runtime without importing TensorRT or any CUDA binding."""
    path = package_copy("act_env")
    proc = run_python(f"import edge\npolicy = edge.load_policy({str(path)!r})\n"
                      "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorrt', 'pycuda', 'cuda')))\n"
                      "print(policy.backend.describe())", block=())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "[]" and proc.stdout.splitlines()[1].startswith("auto -> onnxruntime")


def test_edge_build_refuses_a_graph_tensorrt_cannot_parse(package_copy, edge_cli):
    """The ONNX-level check runs before TensorRT is needed, and names the node."""
    import onnx
    from onnx import helper

    path = package_copy("act_env")
    model = onnx.load(str(path / "act.onnx"))
    model.graph.node.append(helper.make_node("StringNormalizer", ["x_in"], ["x_out"], name="normalise_text"))
    onnx.save(model, str(path / "act.onnx"))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["graphs"]["act"]["sha256"] = sha256_file(path / "act.onnx")
    (path / "manifest.json").write_text(json.dumps(manifest))
    code, out = edge_cli("build", str(path))
    assert code == 2 and "TensorRT 10.3 would not parse it" in out and "'normalise_text' (StringNormalizer)" in out


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


def test_no_onnxruntime_is_a_clear_error(package_copy, run_python):
    proc = run_python(f"import edge\nedge.load_policy({str(package_copy('act_env'))!r})",
                      block=("tensorrt", "onnxruntime"))
    assert proc.returncode == 1
    assert "BackendError: no onnxruntime is importable" in proc.stderr and "onnxruntime-gpu" in proc.stderr


@pytest.mark.parametrize("release, expected", [
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n",
     "JetPack 6 (Jetson Linux R36); fix: `pip install onnxruntime-gpu --index-url https://pypi.jetson-ai-lab.io/jp6/cu126`"),
    ("# R32 (release), REVISION: 7.1\n", "Jetson Linux R32: on a Jetson install NVIDIA's onnxruntime-gpu"),
    ("garbage", "on a Jetson install NVIDIA's onnxruntime-gpu wheel"),
    (None, "elsewhere `pip install onnxruntime`"),
])
def test_missing_onnxruntime_names_the_jetpack_install_command(tmp_path, release, expected):
    """setup.py leaves the CPU build out on a Jetson only; there the error names the command for its JetPack."""
    from edge.runtime.backends.onnxruntime import ort_install_hint

    path = tmp_path / "nv_tegra_release"
    if release is not None:
        path.write_text(release)
    assert expected in ort_install_hint(path)


def test_both_onnxruntime_distributions_are_detected(tmp_path, package_copy, run_python):
    """A fake second distribution's metadata (only its dist-info) is enough for the check to see both."""
    from importlib import metadata

    gpu = tmp_path / "site" / "onnxruntime_gpu-1.20.0.dist-info"
    gpu.mkdir(parents=True)
    (gpu / "METADATA").write_text("Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 1.20.0\n")
    code = ("from edge.cli import main\nsys.exit(main(['check', " + repr(str(package_copy("act_env"))) +
            ", '--backend', 'onnxruntime']))")
    proc = run_python(code, env={"PYTHONPATH": str(tmp_path / "site")})
    assert proc.returncode == 0, proc.stderr
    assert f"both onnxruntime {metadata.version('onnxruntime')} and onnxruntime-gpu 1.20.0" in proc.stdout
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in proc.stdout
    assert "TensorRT 10.3 ONNX parser: every node supported" in proc.stdout


def test_unknown_backend_and_options():
    from edge.errors import BackendError
    from edge.runtime.backends import get_backend

    with pytest.raises(BackendError, match="choose one of"):
        get_backend("tvm")
    with pytest.raises(BackendError, match="takes only engine_dir"):
        get_backend("auto", precision="fp16")
    with pytest.raises(BackendError, match="unknown precision"):
        get_backend("onnxruntime", precision="int8")
