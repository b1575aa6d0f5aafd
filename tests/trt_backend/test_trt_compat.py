"""The ONNX-level TensorRT 10.3 compatibility check: small graphs it must refuse, real packages it must pass."""

from __future__ import annotations

import glob

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.backends import trt_compat
from edge.runtime.backends.trt_compat import check_model, package_problems, support_table
from edge.runtime.package import load_package
from export.cli import main as export_main


def model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def messages(m: onnx.ModelProto) -> list[str]:
    return [str(p) for p in check_model(m, "g")]


def test_table_is_data_with_its_source():
    table = support_table()
    assert table["tensorrt"] == "10.3" and (table["opset_min"], table["opset_max"]) == (9, 20)
    assert "onnx/onnx-tensorrt docs/operators.md" in table["source"] and "62bdde2a" in table["source"]
    ops = table["operators"]
    assert ops["LayerNormalization"]["supported"] and not ops["StringNormalizer"]["supported"]
    assert "restrictions" not in ops["Slice"]  # 10.3 changelog: tensor axes accepted


def test_each_kind_of_problem_is_named():
    ok = model([helper.make_node("Relu", ["x"], ["y"], name="act")], [vi("x", [1, 4])], [vi("y", [1, 4])])
    assert messages(ok) == []

    unsupported = model([helper.make_node("Det", ["x"], ["y"], name="det")], [vi("x", [2, 2])], [vi("y", [])])
    assert messages(unsupported) == ["graph 'g', node 0 'det' (Det): Det is not supported by TensorRT 10.3's ONNX "
                                     "parser (the operator table)"]

    int64 = model([helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
                  [vi("a", [2, 2], TensorProto.INT64), vi("b", [2, 2], TensorProto.INT64)],
                  [vi("y", [2, 2], TensorProto.INT64)])
    assert "INT64 tensor 'a' is not a supported type for MatMul" in messages(int64)[0]

    cubic = model([helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic")],
                  [vi("x", [1, 1, 2, 2])], [vi("y", [1, 1, 4, 4])],
                  [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    assert "attribute mode='cubic' is not supported" in messages(cubic)[0]

    axis_input = model([helper.make_node("CumSum", ["x", "axis"], ["y"], name="cs")],
                       [vi("x", [4]), vi("axis", [], TensorProto.INT64)], [vi("y", [4])])
    assert "input 1 ('axis') must be an initializer or a Constant" in messages(axis_input)[0]

    dynamic = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["batch", 4])], [vi("y", ["batch", 4])])
    assert [m.split(": ", 1)[0] for m in messages(dynamic)] == ["graph 'g', input 'x'", "graph 'g', output 'y'"]

    new_opset = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [4])], [vi("y", [4])], opset=21)
    assert messages(new_opset) == ["graph 'g', model: opset 21 is outside TensorRT 10.3's 9..20"]

    custom = model([helper.make_node("FusedGelu", ["x"], ["y"], domain="com.microsoft")], [vi("x", [4])],
                   [vi("y", [4])])
    custom.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert "(domain 'com.microsoft')" in messages(custom)[0]


@pytest.mark.parametrize("case", ["act_env", "act_cam", "diffusion_cam", "vqbet_cam"])
def test_exported_fixtures_parse(export_fixture, case):
    assert package_problems(load_package(export_fixture(case))) == []


def test_bundled_packages_parse():
    paths = sorted(glob.glob(str(trt_compat.TABLE.parents[1] / "demo_*")))
    assert len(paths) == 3 and all(package_problems(load_package(p)) == [] for p in paths)


def test_export_refuses_a_graph_tensorrt_would_not_parse(lerobot_fixtures, tmp_path, capsys, monkeypatch):
    """The real exporter and check, with MatMul marked unsupported in the table: nothing is written."""
    table = support_table()
    patched = {**table, "operators": {**table["operators"], "MatMul": {"supported": False, "types": []}}}
    monkeypatch.setattr(trt_compat, "support_table", lambda: patched)
    out = tmp_path / "pkg"
    code = export_main([str(lerobot_fixtures / "act_env" / "pretrained_model"), "--out", str(out), "--samples", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "TensorRT 10.3 would not parse graph 'act'" in err and "(MatMul)" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
