"""`--weights float16`: weights rounded to and stored as float16, computed in float32 — half the file,
the same actions as LeRobot within float16 rounding, and a lossless storage step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import edge
from edge.errors import PackageError
from edge.runtime.package import load_package
from export.errors import ExportError
from export.families.base import ExportOptions
from export.pipeline import export_package
from export.weight_storage import round_to_float16, store_float16


@pytest.fixture(scope="module")
def act_cam_fp16(lerobot_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fp16w") / "act_cam"
    export_package(lerobot_fixtures / "act_cam" / "pretrained_model", out, ExportOptions(samples=2, weights="float16"),
                   progress=lambda _msg: None)
    return out


def test_package_is_half_the_size_and_says_so(act_cam_fp16, export_fixture):
    fp32 = export_fixture("act_cam")
    size = {p: sum(f.stat().st_size for f in p.glob("*.onnx")) for p in (fp32, act_cam_fp16)}
    assert size[act_cam_fp16] < 0.55 * size[fp32]
    assert load_package(act_cam_fp16).manifest.weights == "float16"
    assert load_package(fp32).manifest.weights == "float32"
    model = onnx.load(str(next(act_cam_fp16.glob("*.onnx"))))
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT] * len(model.graph.input)


def test_actions_stay_close_to_lerobot(act_cam_fp16, reference_rollout):
    """The rounded weights move ACT's actions by far less than a servo tick (LeRobot's own rollout)."""
    ref = reference_rollout("act_cam")
    policy = edge.load_policy(act_cam_fp16)
    policy.reset()
    steps = sorted({int(k.split(".")[1]) for k in ref if k.startswith("action.")})
    worst = 0.0
    for t in steps:
        action = policy.select_action({n: ref[f"obs.{t}.{n}"] for n in policy.input_names})
        scale = max(1.0, float(np.abs(ref[f"action.{t}"]).max()))
        worst = max(worst, float(np.abs(action - ref[f"action.{t}"]).max()) / scale)
    assert 0 < worst < 5e-3


def _two_weight_model(exact: np.ndarray, inexact: np.ndarray) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, exact.shape[0]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, exact.shape[1]])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "a"], ["h"]), helper.make_node("MatMul", ["h", "b"], ["y"])],
        "two", [x], [y], [numpy_helper.from_array(exact, "a"), numpy_helper.from_array(inexact, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_storage_is_lossless_and_keeps_inexact_weights(tmp_path):
    rng = np.random.default_rng(0)
    exact = rng.standard_normal((64, 64)).astype(np.float16).astype(np.float32)
    inexact = rng.standard_normal((64, 64)).astype(np.float32)  # not representable in float16
    path = tmp_path / "m.onnx"
    onnx.save(_two_weight_model(exact, inexact), str(path))
    shutil.copy(path, tmp_path / "before.onnx")
    report = store_float16(path)
    assert (report.converted, report.kept) == (1, 1)
    assert report.bytes_after == report.bytes_before - exact.nbytes // 2
    stored = {i.name: i.data_type for i in onnx.load(str(path)).graph.initializer}
    assert stored == {"a.float16": TensorProto.FLOAT16, "b": TensorProto.FLOAT}
    x = {"x": rng.standard_normal((1, 64)).astype(np.float32)}
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, x)[0]
               for p in (tmp_path / "before.onnx", path)]
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_rounding_spares_what_float16_cannot_hold():
    small = torch.tensor([1.0 + 2**-12, 3.0])  # 1 + 2^-12 rounds to 1 in float16
    huge = torch.tensor([1e5, 1.0 + 2**-12])
    ints = torch.tensor([70000, 3])
    out = round_to_float16({"small": small, "huge": huge, "ints": ints})
    assert out["small"].tolist() == [1.0, 3.0] and out["small"].dtype == torch.float32
    assert torch.equal(out["huge"], huge) and torch.equal(out["ints"], ints)


def test_unknown_weight_storage_is_refused_before_anything_is_written(lerobot_fixtures, tmp_path):
    out = tmp_path / "pkg"
    with pytest.raises(ExportError, match="'int8'"):
        export_package(lerobot_fixtures / "act_env" / "pretrained_model", out, ExportOptions(weights="int8"),
                       progress=lambda _msg: None)
    assert list(tmp_path.iterdir()) == []


def test_manifest_with_unknown_weight_storage_is_refused(export_fixture, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(export_fixture("act_env"), pkg)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["weights"] = "bfloat16"
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="'weights' is 'bfloat16'"):
        load_package(pkg)
