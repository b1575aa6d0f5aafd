"""The INT8 package option: what it quantizes, what the manifest says, what it refuses."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import edge  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from edge.runtime.validation import check_package  # noqa: E402
from export.cpu_precision import main as cpu_precision_cli  # noqa: E402
from export.cpu_precision import quantize_package, unfold_float16_storage
from export.errors import ExportError  # noqa: E402
from export.graph_rewrites import gemm_as_matmul  # noqa: E402


@pytest.fixture(scope="module")
def int8_package(export_fixture, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "diffusion_cam"
    shutil.copytree(export_fixture("diffusion_cam"), out)
    errors = quantize_package(out, progress=lambda _m: None)
    return out, errors


def test_int8_package_loads_checks_and_acts_like_fp32(export_fixture, int8_package):
    path, errors = int8_package
    package = load_package(path)  # hashes in the manifest match the rewritten graphs
    assert package.manifest.cpu_precision == "int8"
    ops = Counter(n.op_type for n in onnx.load(str(package.graph_path("denoiser"))).graph.node)
    assert ops["MatMulNBits"] > 0 and ops["Conv"] == 0 and ops["MatMul"] == 0
    assert package.manifest.validation.export_max_abs_error == pytest.approx(errors)
    checks = check_package(package, OnnxRuntimeBackend(["CPUExecutionProvider"]))
    assert all(c.ok for c in checks) and {c.precision for c in checks} == {"int8"}
    rng = np.random.default_rng(0)
    obs = {"observation.state": rng.standard_normal(6).astype(np.float32),
           "observation.images.top": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)}
    noise = rng.standard_normal((16, 6)).astype(np.float32)
    fp32 = edge.load_policy(export_fixture("diffusion_cam")).predict_action_chunk(obs, noise)
    int8 = edge.load_policy(path).predict_action_chunk(obs, noise)
    assert np.all(np.isfinite(int8)) and not np.array_equal(int8, fp32)
    assert np.max(np.abs(int8 - fp32)) < 0.1 * max(1.0, float(np.max(np.abs(fp32))))


def test_what_int8_refuses(export_fixture, int8_package, tmp_path, capsys):
    with pytest.raises(ExportError, match="already a int8 package"):
        quantize_package(int8_package[0], progress=lambda _m: None)
    act = tmp_path / "act"
    shutil.copytree(export_fixture("act_env"), act)
    with pytest.raises(ExportError, match="not offered for act policies"):
        quantize_package(act, progress=lambda _m: None)
    assert json.loads((act / "manifest.json").read_text())["cpu_precision"] == "fp32"  # nothing changed
    assert cpu_precision_cli([str(act), "--out", str(tmp_path / "act_int8")]) == 2
    assert "not offered for act policies" in capsys.readouterr().err
    assert not (tmp_path / "act_int8").exists()  # no partial package left behind


def test_gemm_as_matmul_and_float16_unfolding_are_exact(tmp_path):
    from export.weight_storage import store_float16

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(48, 40), torch.nn.ReLU(), torch.nn.Linear(40, 8, bias=False)).eval()
    for p in module.parameters():
        p.data = p.data.half().float()  # float16-exact, so storing them as float16 is lossless
    x = torch.randn(3, 48)
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    assert store_float16(path, min_elements=1).converted == 3
    model = onnx.load(str(path))
    assert unfold_float16_storage(model) == 3
    assert gemm_as_matmul(model) == 1  # the bias-free Linear was traced as MatMul already
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Gemm"] == 0 and ops["Cast"] == 0 and ops["MatMul"] == 2
    onnx.checker.check_model(model, full_check=True)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got[0], module(x).numpy(), rtol=0, atol=1e-5)
