"""FP32 rewrites the FP16 converter makes before choosing precisions: LayerNormalization decomposed, BatchNormalization
folded into the Conv before it. Both run in FP32, on a model the converter already copied."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def decompose_layer_norms(model: onnx.ModelProto) -> tuple[set[str], int]:
    """Replace each LayerNormalization by ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div/Mul/Add, in place.

    Returns the names of the nodes that must stay FP32 (the reductions, the centring, square, root and
    division) and the count replaced. Same formula as the ONNX operator (opset 17 function body). The
    square is Mul(d, d), not Pow(d, 2): ONNX Runtime's LayerNormFusion would fuse the Pow form back into
    one LayerNormalization across the FP16->FP32 Cast in front and then fail on the mixed types.
    """
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    ranks = {v.name: len(v.type.tensor_type.shape.dim)
             for v in [*onnx.shape_inference.infer_shapes(model).graph.value_info, *graph.input]}
    keep: set[str] = set()
    nodes, count = [], 0
    for index, ln in enumerate(graph.node):
        if ln.op_type != "LayerNormalization" or ln.domain not in ("", "ai.onnx"):
            nodes.append(ln)
            continue
        count += 1
        attrs = {a.name: helper.get_attribute_value(a) for a in ln.attribute}
        axis, eps = attrs.get("axis", -1), attrs.get("epsilon", 1e-5)
        axes = list(range(axis, 0)) if axis < 0 else list(range(axis, ranks[ln.input[0]]))
        p = f"{ln.name or f'LayerNormalization_{index}'}__decomposed"
        x, out = ln.input[0], ln.output[0]
        consts = [numpy_helper.from_array(np.array(eps, np.float32), f"{p}/eps")]
        if opset >= 18:  # ReduceMean takes axes as an input from opset 18
            consts.append(numpy_helper.from_array(np.array(axes, np.int64), f"{p}/axes"))
            reduce = {"inputs": [f"{p}/axes"], "attrs": {"keepdims": 1}}
        else:
            reduce = {"inputs": [], "attrs": {"axes": axes, "keepdims": 1}}
        graph.initializer.extend(consts)

        def node(op: str, inputs: list[str], name: str, **attrs: Any) -> onnx.NodeProto:
            return helper.make_node(op, inputs, [f"{p}/{name}"], name=f"{p}/{name}", **attrs)

        new = [node("ReduceMean", [x, *reduce["inputs"]], "mean", **reduce["attrs"]),
               node("Sub", [x, f"{p}/mean"], "centred"),
               node("Mul", [f"{p}/centred", f"{p}/centred"], "squared"),
               node("ReduceMean", [f"{p}/squared", *reduce["inputs"]], "variance", **reduce["attrs"]),
               node("Add", [f"{p}/variance", f"{p}/eps"], "variance_eps"),
               node("Sqrt", [f"{p}/variance_eps"], "std"),
               node("Div", [f"{p}/centred", f"{p}/std"], "normalised"),
               node("Mul", [f"{p}/normalised", ln.input[1]], "scaled")]
        if len(ln.input) > 2 and ln.input[2]:
            new.append(node("Add", [f"{p}/scaled", ln.input[2]], "shifted"))
        new[-1].output[0] = out
        keep.update(f"{p}/{name}" for name in ("mean", "centred", "squared", "variance", "std", "normalised"))
        nodes += new
    del graph.node[:]
    graph.node.extend(nodes)
    return keep, count


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers, and Casts of initializers to float32 (float16-stored weights), by tensor name."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        to = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "to"), None)
        if n.op_type == "Cast" and n.input[0] in values and to == TensorProto.FLOAT:
            values[n.output[0]] = values[n.input[0]].astype(np.float32)
    return values


def _drop_unread(graph: onnx.GraphProto) -> None:
    """Remove weight Casts and initializers nothing reads any more (the weights a fold replaced)."""
    def read() -> set[str]:
        return {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    initializers = {t.name for t in graph.initializer}
    names = read()
    kept = [copy.deepcopy(n) for n in graph.node if not (n.op_type == "Cast" and n.input[0] in initializers and n.output[0] not in names)]
    del graph.node[:]
    graph.node.extend(kept)
    names = read()
    unused = [t for t in graph.initializer if t.name not in names]
    for t in unused:
        graph.initializer.remove(t)


def fold_batch_norms(model: onnx.ModelProto) -> int:
    """Fold each inference-mode BatchNormalization whose input is a Conv read by nothing else into that Conv, in
    float64 then stored as float32 weights; returns the count. Left unfolded (another op before it, non-constant
    statistics), a BatchNormalization stays an FP32 island: onnx-tensorrt folds all-HALF BN weights in half
    precision (batchnormWeightHelper<half>), which loses the variance's precision."""
    graph = model.graph
    values = _constant_values(graph)
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for o in graph.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    producer = {o: n for n in graph.node for o in n.output}
    folded: set[int] = set()  # indices in graph.node
    for index, bn in enumerate(graph.node):
        attrs: dict[str, Any] = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        conv = producer.get(bn.input[0]) if bn.op_type == "BatchNormalization" else None
        if (conv is None or conv.op_type != "Conv" or bn.domain not in ("", "ai.onnx") or attrs.get("training_mode", 0)
                or any(o for o in bn.output[1:]) or readers.get(bn.input[0]) != 1
                or any(name not in values for name in [conv.input[1], *bn.input[1:5]])
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in values)):
            continue
        scale, bias, mean, var = (values[name].astype(np.float64) for name in bn.input[1:5])
        factor = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))
        weight = values[conv.input[1]].astype(np.float64)
        conv_bias = values[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        p = f"{conv.name or conv.output[0]}__bn_folded"
        graph.initializer.extend([
            numpy_helper.from_array((weight * factor.reshape(-1, *[1] * (weight.ndim - 1))).astype(np.float32), f"{p}/W"),
            numpy_helper.from_array(((conv_bias - mean) * factor + bias).astype(np.float32), f"{p}/B")])
        conv.input[:] = [conv.input[0], f"{p}/W", f"{p}/B"]
        stale = conv.output[0]
        conv.output[0] = bn.output[0]
        for v in [v for v in graph.value_info if v.name == stale]:
            graph.value_info.remove(v)
        folded.add(index)
    if folded:
        kept = [copy.deepcopy(n) for k, n in enumerate(graph.node) if k not in folded]
        del graph.node[:]
        graph.node.extend(kept)
        _drop_unread(graph)
    return len(folded)
