"""The FP16 converter on small hand-built graphs: FP32 islands, casts at boundaries, weights, CPU ORT runs it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.errors import Fp16Error
from export.fp16.convert import convert_to_fp16


def make_model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def vinfo(name: str, shape: list[int], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def handwritten_norm() -> onnx.ModelProto:
    """MatMul, then a ReduceMean/Pow/Sqrt layer norm (as older exporters write it), then MatMul."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 40, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w2")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    eps = numpy_helper.from_array(np.array(1e-5, np.float32), "eps")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1]),
        helper.make_node("Sub", ["h", "mean"], ["c"]),
        helper.make_node("Pow", ["c", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["c", "std"], ["n"]),
        helper.make_node("MatMul", ["n", "w2"], ["y"]),
    ]
    return make_model(nodes, [vinfo("x", [2, 16])], [vinfo("y", [2, 4])], [w1, w2, two, eps])


def test_reductions_stay_fp32_and_the_result_is_accurate():
    model = handwritten_norm()
    x = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32) * 5  # h ~ 800: h**2 overflows FP16
    w1 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1"))
    h = x @ w1
    assert np.max((h - h.mean(-1, keepdims=True)) ** 2) > 65504  # the squares overflow FP16: the islands matter
    fp16, report = convert_to_fp16(model)
    kinds = {n.op_type: n for n in fp16.graph.node}
    assert report.fp32_nodes == {"ReduceMean": 2, "Pow": 1, "Add": 1, "Sqrt": 1}  # Add(var, eps) joins the island
    assert report.fp16_nodes == 4 and report.casts_added >= 2
    assert {i.name: i.data_type for i in fp16.graph.initializer} == {
        "w1": TensorProto.FLOAT16, "w2": TensorProto.FLOAT16, "two": TensorProto.FLOAT, "eps": TensorProto.FLOAT}
    assert kinds["Pow"].input[0].endswith("__to_fp32")
    assert [(v.name, v.type.tensor_type.elem_type) for v in fp16.graph.output] == [("y", TensorProto.FLOAT)]
    (ref,), (got,) = run(model, {"x": x}), run(fp16, {"x": x})
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    assert np.max(np.abs(got - ref)) < 2e-2 * max(1.0, np.max(np.abs(ref)))


def test_shared_constant_graph_output_and_weight_clipping():
    shared = numpy_helper.from_array(np.array([3.0, 1.0, 0.5, 0.0], np.float32), "shared")
    nodes = [
        helper.make_node("Add", ["x", "shared"], ["a"]),          # FP16 reader of `shared`
        helper.make_node("Softmax", ["shared"], ["s"], axis=0),   # FP32 reader of `shared`
        helper.make_node("Mul", ["a", "s"], ["y"]),
        helper.make_node("Relu", ["y"], ["z"]),                 # `y` is an output and read inside
    ]
    model = make_model(nodes, [vinfo("x", [4])], [vinfo("y", [4]), vinfo("z", [4])], [shared])
    fp16, report = convert_to_fp16(model)
    assert next(i for i in fp16.graph.initializer if i.name == "shared").data_type == TensorProto.FLOAT
    assert [v.type.tensor_type.elem_type for v in fp16.graph.output] == [TensorProto.FLOAT] * 2
    x = np.arange(4, dtype=np.float32)
    y, z = run(fp16, {"x": x})
    ry, rz = run(model, {"x": x})
    np.testing.assert_allclose(z, np.maximum(y, 0), rtol=1e-3)
    np.testing.assert_allclose(y, ry, rtol=1e-3)

    big = numpy_helper.from_array(np.array([1e5, 1.0, 1e-9, 0.0], np.float32), "big")
    clipped, report = convert_to_fp16(make_model([helper.make_node("Add", ["x", "big"], ["y"])],
                                                 [vinfo("x", [4])], [vinfo("y", [4])], [big]))
    assert (report.weights_clipped, report.weights_flushed_to_zero, report.weights_fp16) == (1, 1, 1)
    assert np.isfinite(run(clipped, {"x": x})[0]).all()


def test_constant_nodes_and_shape_reads():
    value = helper.make_tensor("v", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    nodes = [
        helper.make_node("Constant", [], ["k"], value=value),
        helper.make_node("Mul", ["x", "k"], ["m"]),
        helper.make_node("Shape", ["m"], ["shape"]),
        helper.make_node("Reshape", ["m", "shape"], ["y"]),
    ]
    fp16, report = convert_to_fp16(make_model(nodes, [vinfo("x", [4])], [vinfo("y", [4])]))
    constant = next(n for n in fp16.graph.node if n.op_type == "Constant")
    assert constant.attribute[0].t.data_type == TensorProto.FLOAT16
    assert report.fp32_nodes == {}  # Shape reads only the shape: no cast, no island
    x = np.ones(4, np.float32)
    np.testing.assert_allclose(run(fp16, {"x": x})[0], [1, 2, 3, 4])


def test_control_flow_is_refused():
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [], [vinfo("t", [1])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then)]
    model = make_model(nodes, [vinfo("c", [], TensorProto.BOOL), vinfo("x", [1])], [vinfo("y", [1])])
    with pytest.raises(Fp16Error, match="If/Loop/Scan"):
        convert_to_fp16(model)


@pytest.mark.parametrize("opset", [17, 18])
def test_layer_norm_is_decomposed_with_fp32_reductions(opset):
    """Strongly typed TensorRT 10.x builds cannot take LayerNormalization: it becomes FP32 reductions, same result."""
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32) * 30, "w")
    scale = numpy_helper.from_array(rng.uniform(0.5, 1.5, 16).astype(np.float32), "scale")
    bias = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "bias")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("LayerNormalization", ["h", "scale", "bias"], ["n"], name="ln", axis=-1, epsilon=1e-5),
             helper.make_node("Relu", ["n"], ["y"])]
    model = make_model(nodes, [vinfo("x", [3, 8])], [vinfo("y", [3, 16])], [w, scale, bias], opset=opset)
    fp16, report = convert_to_fp16(model)
    kinds = [n.op_type for n in fp16.graph.node]
    assert "LayerNormalization" not in kinds and report.decomposed == {"LayerNormalization": 1}
    assert report.fp32_nodes == {"ReduceMean": 2, "Sub": 1, "Mul": 2, "Add": 2, "Sqrt": 1, "Div": 1}
    x = rng.standard_normal((3, 8)).astype(np.float32) * 10  # h ~ 1000: its squares overflow FP16
    (ref,), (got,) = run(model, {"x": x}), run(fp16, {"x": x})
    assert np.all(np.isfinite(got)) and np.max(np.abs(got - ref)) < 2e-2 * max(1.0, np.max(np.abs(ref)))


def test_float16_stored_weights_are_not_islands():
    """`--weights float16` puts a Cast after each weight: storage, not an FP32 island, and no FP16->FP32->FP16 chain."""
    w16 = numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float16).reshape(4, 4), "w.float16")
    nodes = [helper.make_node("Cast", ["w.float16"], ["w"], name="w.to_float32", to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = make_model(nodes, [vinfo("x", [2, 4])], [vinfo("y", [2, 4])], [w16])
    fp16, report = convert_to_fp16(model)
    assert report.fp32_nodes == {} and report.fp16_nodes == 1
    matmul = next(n for n in fp16.graph.node if n.op_type == "MatMul")
    assert matmul.input[1] == "w.float16" and [n.op_type for n in fp16.graph.node].count("Cast") == 2  # x in, y out
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(run(fp16, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-2, atol=1e-2)


def test_activation_after_a_norm_runs_in_fp16():
    """A GroupNorm (InstanceNormalization below opset 18) and its affine Mul stay FP32; the Mish after them does not."""
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.ones(2, np.float32), "s"), numpy_helper.from_array(np.zeros(2, np.float32), "b"),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 2, 1)).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.standard_normal((2, 2, 1)).astype(np.float32), "k")]
    nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["n"]),
             helper.make_node("Mul", ["n", "gamma"], ["g"]),
             helper.make_node("Mish", ["g"], ["m"]),
             helper.make_node("Conv", ["m", "k"], ["y"])]
    model = make_model(nodes, [vinfo("x", [1, 2, 8])], [vinfo("y", [1, 2, 8])], inits, opset=18)
    fp16, report = convert_to_fp16(model)
    assert report.fp32_nodes == {"InstanceNormalization": 1, "Mul": 1} and report.fp16_nodes == 2
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    np.testing.assert_allclose(run(fp16, {"x": x})[0], run(model, {"x": x})[0], rtol=1e-2, atol=1e-2)
