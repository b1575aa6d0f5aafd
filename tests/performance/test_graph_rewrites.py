"""Export-time graph rewrites give the same outputs as the graph PyTorch traced, with the nodes they promise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from export.graph_rewrites import conv1d_as_matmul, mish_without_softplus, rewrite_file  # noqa: E402


class Block(torch.nn.Module):
    """Conv1d (k=5, padded) → Mish → Conv1d (k=1) → Conv1d (k=3, stride 2: the U-Net's downsampling) → Conv1d
    (k=3, dilation 2, unpadded, no bias), at a U-Net's tiny lengths."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv1d(64, 96, 5, padding=2)
        self.b = torch.nn.Conv1d(96, 64, 1)
        self.c = torch.nn.Conv1d(64, 64, 3, 2, 1)
        self.d = torch.nn.Conv1d(64, 32, 3, dilation=2, bias=False)
        self.mish = torch.nn.Mish()

    def forward(self, x):
        return self.d(self.c(self.b(self.mish(self.a(x)))))


class Twice(torch.nn.Module):
    """One Conv1d applied twice: its weight is shared by two Conv nodes, as in a fused K-step graph."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(32, 32, 5, padding=2)

    def forward(self, x):
        return self.conv(self.conv(x))


def _export(module: torch.nn.Module, x: torch.Tensor, path: Path) -> onnx.ModelProto:
    with torch.no_grad():
        torch.onnx.export(module.eval(), (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False)
    return onnx.load(str(path))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("length", [16, 13])
def test_conv1d_as_matmul_and_mish_match_the_traced_graph(tmp_path, length):
    torch.manual_seed(0)
    module, x = Block(), torch.randn(1, 64, length)
    with torch.no_grad():
        expected = module(x).numpy()
    model = _export(module, x, tmp_path / "block.onnx")
    assert Counter(n.op_type for n in model.graph.node)["Conv"] == 4
    assert conv1d_as_matmul(model) == 4
    assert mish_without_softplus(model) == 1
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 0 and ops["Softplus"] == 0 and ops["Tanh"] == 0 and ops["MatMul"] == 4
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(_run(model, x.numpy()), expected, rtol=0, atol=2e-5)


def test_mish_rewrite_holds_over_the_whole_range(tmp_path):
    x = torch.tensor([[-100.0, -30.0, -10.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 3.0, 19.9, 20.1, 50.0, 1e4]])
    model = _export(torch.nn.Mish(), x, tmp_path / "mish.onnx")
    assert mish_without_softplus(model) == 1
    got = _run(model, x.numpy())
    expected = torch.nn.functional.mish(x).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7)


def test_a_shared_weight_stays_one_weight(tmp_path):
    module, x = Twice(), torch.randn(1, 32, 8)
    with torch.no_grad():
        expected = module(x).numpy()
    model = _export(module, x, tmp_path / "twice.onnx")
    assert conv1d_as_matmul(model) == 2
    matmul_weights = {n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    assert len(matmul_weights) == 1
    assert sum(i.name in matmul_weights for i in model.graph.initializer) == 1
    np.testing.assert_allclose(_run(model, x.numpy()), expected, rtol=0, atol=2e-5)


def test_rewrite_file_rewrites_a_real_export_in_place(lerobot_fixtures, export_fixture, tmp_path):
    """The diffusion_cam fixture's denoiser, exported without rewrites, rewritten in place: same outputs."""
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    out = tmp_path / "plain"
    export_package(lerobot_fixtures / "diffusion_cam" / "pretrained_model", out,
                   ExportOptions(samples=1, graph_rewrites=False), progress=lambda _m: None)
    path = out / "denoiser.onnx"
    feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)
             for i in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()}
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert rewrite_file(path) > 0
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(after, before, rtol=0, atol=2e-5)
    rewritten = {n.op_type for n in onnx.load(str(export_fixture("diffusion_cam") / "denoiser.onnx")).graph.node}
    assert "Softplus" not in rewritten and "MatMul" in rewritten  # the default export path rewrites too
