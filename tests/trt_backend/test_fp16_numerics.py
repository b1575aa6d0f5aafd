"""The preflight's FP16 numerics: simulated activations reach inf where FP16 overflows, the range screen names the
tensor, and the converter's rules for squares before reductions and for BatchNormalization."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file, save_file
from test_fp16_convert import make_model, run, vinfo

from edge.runtime.package import load_package
from export.families.base import ExportOptions
from export.fp16.__main__ import main as fp16_main
from export.fp16.convert import convert_to_fp16, convert_with_plan
from export.fp16.numerics import RangeScreen, simulated_fp16
from export.pipeline import export_package


def test_simulated_fp16_overflows_where_onnxruntime_hides_it():
    """x @ W = 120000 is inf in FP16. ORT's CPU runs the FP16 graph's MatMul in FP32 and drops the converter's cast,
    so the FP16 file gives 120000; the explicit cast pairs survive ORT's optimiser and give inf."""
    w = numpy_helper.from_array(np.array([[1000.0, 1.0]], np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="big_matmul"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    model = make_model(nodes, [vinfo("x", [1, 1])], [vinfo("y", [1, 2])], [w])
    x = {"x": np.array([[120.0]], np.float32)}
    fp16, _report, plan = convert_with_plan(model)
    assert np.isfinite(run(fp16, x)[0]).all()  # the defect: ONNX Runtime computes the FP16 nodes in FP32
    simulated = run(simulated_fp16(plan), x)[0]
    assert np.isinf(simulated[0, 0]) and simulated[0, 1] == pytest.approx(120.0)

    screen = RangeScreen(plan, "g")
    np.testing.assert_allclose(screen.run(x)["y"], run(model, x)[0])  # the screen's outputs are the FP32 reference
    summary = screen.summary(headroom=2.0)
    assert summary["over_limit_count"] == 1 and summary["limit"] == 65504 / 2 and summary["runs"] == 1
    # Relu passes FP16 values through unchanged: its input is screened, its output needs no cast pair
    assert summary["over_limit"] == [{"tensor": "h", "node": "big_matmul", "op": "MatMul", "max_abs": 120000.0}]


def test_a_cast_pair_rounds_like_ieee_half():
    """ONNX Runtime's Cast(fp32->fp16)->Cast(fp16->fp32), what the simulation relies on, against numpy's float16:
    round to nearest even, subnormals kept, overflow to inf."""
    pair = make_model([helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
                       helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)],
                      [vinfo("x", [100007])], [vinfo("y", [100007])])
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100000) * 10 ** rng.uniform(-9, 5, 100000),
                        [1 + 2**-11, 1 + 3 * 2**-11, 2**-20, 3e-8, 65519, 65520, 1e5]]).astype(np.float32)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(run(pair, {"x": x})[0], expected)
    assert np.isinf(expected[-2:]).all() and expected[-4] > 0  # the edges were exercised


def test_screen_reports_values_below_the_smallest_normal():
    nodes = [helper.make_node("Mul", ["x", "k"], ["y"], name="scale")]
    model = make_model(nodes, [vinfo("x", [4])], [vinfo("y", [4])],
                       [numpy_helper.from_array(np.full(4, 1e-3, np.float32), "k")])
    _fp16, _report, plan = convert_with_plan(model)
    screen = RangeScreen(plan, "g")
    screen.run({"x": np.array([0.0, 0.01, 1.0, 10.0], np.float32)})  # y = 0, 1e-5, 1e-3, 1e-2; x itself: 0.01..10
    summary = screen.summary()
    assert summary["over_limit_count"] == 0
    assert summary["below_normal_share"] == pytest.approx(1 / 6)  # one of six non-zero values (x and y) is 1e-5


def squared_norm(square: str) -> onnx.ModelProto:
    """MatMul, then a norm whose square is Mul(c, c) (or Pow) feeding ReduceMean; its squares exceed 65504."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32) * 40, "w1"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    sq = (helper.make_node("Mul", ["c", "c"], ["sq"], name="square") if square == "mul"
          else helper.make_node("Pow", ["c", "two"], ["sq"], name="square"))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1]),
             helper.make_node("Sub", ["h", "mean"], ["c"]), sq,
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["var_eps"]),
             helper.make_node("Sqrt", ["var_eps"], ["std"]),
             helper.make_node("Div", ["c", "std"], ["y"])]
    return make_model(nodes, [vinfo("x", [2, 16])], [vinfo("y", [2, 16])], inits)


def test_a_square_feeding_a_reduction_stays_fp32():
    x = {"x": np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32) * 5}
    model = squared_norm("mul")
    fp16, report, plan = convert_with_plan(model)
    assert report.fp32_nodes.get("Mul") == 1  # the square, like Pow
    assert "sq" not in plan.outputs
    ref, got = run(model, x)[0], run(simulated_fp16(plan), x)[0]
    assert np.isfinite(got).all() and np.max(np.abs(got - ref)) < 2e-2 * max(1.0, np.max(np.abs(ref)))
    assert convert_to_fp16(squared_norm("pow"))[1].fp32_nodes.get("Pow") == 1


def conv_bn(float16_weights: bool, after_conv: bool = True) -> onnx.ModelProto:
    """Conv (or Relu) -> BatchNormalization -> Relu; `float16_weights` stores the weights as `--weights float16` does."""
    rng = np.random.default_rng(5)
    channels = 4 if after_conv else 2
    arrays = {"scale": rng.uniform(0.5, 2, channels), "bias": rng.standard_normal(channels),
              "mean": rng.standard_normal(channels) * 50,
              "var": rng.uniform(1e-4, 1e-3, channels)}  # small variances: folding in half precision loses them
    if after_conv:
        arrays.update(k=rng.standard_normal((4, 2, 3)), kb=rng.standard_normal(4))
    nodes, inits = [], []
    for name, value in arrays.items():
        if float16_weights:
            inits.append(numpy_helper.from_array(value.astype(np.float16), f"{name}.float16"))
            nodes.append(helper.make_node("Cast", [f"{name}.float16"], [name], to=TensorProto.FLOAT))
        else:
            inits.append(numpy_helper.from_array(value.astype(np.float32), name))
    nodes += [helper.make_node("Conv", ["x", "k", "kb"], ["c"], name="conv", pads=[1, 1]) if after_conv
              else helper.make_node("Relu", ["x"], ["c"], name="relu0"),
              helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"], name="bn"),
              helper.make_node("Relu", ["n"], ["y"])]
    return make_model(nodes, [vinfo("x", [1, 2, 8])], [vinfo("y", [1, channels, 8])], inits)


@pytest.mark.parametrize("float16_weights", [False, True])
def test_batch_norm_is_folded_into_its_conv_in_fp32(float16_weights):
    model = conv_bn(float16_weights)
    fp16, report, plan = convert_with_plan(model)
    assert "BatchNormalization" not in [n.op_type for n in fp16.graph.node]
    assert report.folded == {"BatchNormalization": 1}
    x = {"x": np.random.default_rng(6).standard_normal((1, 2, 8)).astype(np.float32)}
    ref = run(model, x)[0]
    for candidate in (fp16, simulated_fp16(plan)):
        got = run(candidate, x)[0]
        assert np.max(np.abs(got - ref)) < 2e-2 * max(1.0, np.max(np.abs(ref)))


def test_batch_norm_without_a_conv_stays_fp32():
    fp16, report = convert_to_fp16(conv_bn(False, after_conv=False))
    assert report.fp32_nodes.get("BatchNormalization") == 1 and not report.folded
    bn = next(n for n in fp16.graph.node if n.op_type == "BatchNormalization")
    assert bn.input[0].endswith("__to_fp32")


def test_lerobot_act_whose_feed_forward_overflows_fp16_fails_the_preflight(lerobot_fixtures, tmp_path, capsys):
    """LeRobot's act_env checkpoint with its first encoder layer's feed-forward made to reach ~1.2e5 before the
    residual LayerNorm: FP32 is finite and the export's parity check passes, but FP16 holds that sum as inf."""
    checkpoint = shutil.copytree(lerobot_fixtures / "act_env" / "pretrained_model", tmp_path / "ckpt")
    weights = load_file(str(checkpoint / "model.safetensors"))
    prefix = "model.encoder.layers.0."
    hidden = weights[prefix + "linear1.bias"].size
    weights[prefix + "linear1.bias"][:] = 100.0  # relu(W1 x + 100) ~ 100 on every hidden unit
    weights[prefix + "linear2.weight"][0, :] = 1.2e5 / (100.0 * hidden)  # channel 0 of the feed-forward ~ 1.2e5
    save_file(weights, str(checkpoint / "model.safetensors"))
    out = tmp_path / "pkg"
    export_package(checkpoint, out, ExportOptions(samples=2), progress=lambda _m: None)  # FP32 parity passes

    assert fp16_main([str(out), "--steps", "2"]) == 1
    printed = capsys.readouterr()
    record = load_package(out).manifest.fp16_preflight
    assert record.ok is False and record.range_headroom == 2.0
    over = record.graphs["act"].range.over_limit
    assert over and all(t.max_abs > 65504 / 2 for t in over)
    first = [t for t in over if "layers.0" in t.node and "encoder" in t.node]
    assert first and 9e4 < max(t.max_abs for t in first) < 1.5e5, over
    assert first[0].tensor in printed.out and first[0].tensor in printed.err and "headroom" in printed.out
