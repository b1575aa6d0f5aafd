"""FP32 ONNX graph -> FP16 graph with FP32 "islands" where FP16 overflows or loses too much.

Weights and activations become FP16 while the operations that overflow or lose too much in FP16
(normalisation reductions, Softmax, exp/log/pow, the sinusoidal embeddings' sin/cos, cumulative sums,
arg-max) stay FP32 behind Cast nodes. Graph inputs and outputs stay float32, so every backend feeds an
FP16 graph exactly like the FP32 one. First, in FP32 (rewrites.py): LayerNormalization is decomposed into
ReduceMean/Sub/Mul/Sqrt/Div kept FP32 (TensorRT 10.x's importer for it calls `setComputePrecision`, which
strongly typed networks reject: docs/tensorrt.md) and BatchNormalization is folded into the Conv before it.
`convert_with_plan` also says where the FP16 graph holds values in FP16, for the preflight's numerics
(numerics.py).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import Fp16Error
from export.fp16.rewrites import decompose_layer_norms, fold_batch_norms

FP16_MAX = float(np.finfo(np.float16).max)
FP16_TINY = float(np.finfo(np.float16).smallest_subnormal)

# Ops that run in FP16: elementwise arithmetic, matrix products, convolutions, pooling and pure data
# movement. Anything else runs in FP32 — an allow list, so an op nobody thought about stays safe.
FP16_OPS = frozenset({
    "Abs", "Add", "AveragePool", "Clip", "Concat", "Conv", "ConvTranspose",
    "DepthToSpace", "Div", "Einsum", "Elu", "Erf", "Expand", "Flatten", "Gather", "GatherElements", "Gelu",
    "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu",
    "MatMul", "Max", "MaxPool", "Min", "Mish", "Mul", "Neg", "Pad", "Relu", "Reshape", "Sigmoid", "Slice",
    "Softplus", "SpaceToDepth", "Split", "Squeeze", "Sub", "Tanh", "Tile", "Transpose", "Unsqueeze", "Where",
})
# Where FP16 pays: these run in FP16 even when fed by an FP32 island.
HEAVY_OPS = frozenset({"AveragePool", "Conv", "ConvTranspose", "Einsum", "Gemm",
                       "GlobalAveragePool", "GlobalMaxPool", "MatMul", "MaxPool"})
# Activations keep their input's range (or squash it), so an FP32 island before them (a GroupNorm's output,
# say) is no cause to keep them FP32: they run in FP16 wherever they are.
ACTIVATIONS = frozenset({"Elu", "Erf", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Mish", "Relu", "Sigmoid",
                         "Softplus", "Tanh"})
# Why the notable FP32 islands are FP32 (reported per graph; not exhaustive, see FP16_OPS).
FP32_REASONS = {
    "LayerNormalization": "mean/variance reduction overflows in FP16",
    "GroupNormalization": "mean/variance reduction overflows in FP16",
    "InstanceNormalization": "GroupNorm as exported below opset 18; reduction overflows in FP16",
    "ReduceMean": "hand-written norms: the variance reduction overflows in FP16",
    "ReduceSum": "sum overflows in FP16", "ReduceSumSquare": "sum of squares overflows in FP16",
    "ReduceL2": "sum of squares overflows in FP16", "Pow": "x**2 overflows in FP16 above 256",
    "Mul": "a square Mul(x, x) feeding ReduceSum/ReduceMean overflows in FP16 above 256, like Pow",
    "BatchNormalization": "not after a Conv it folds into; onnx-tensorrt folds all-HALF BN weights in half precision",
    "Sqrt": "fed by FP32 variances", "Reciprocal": "fed by FP32 variances",
    "Softmax": "exp/sum over logits", "LogSoftmax": "exp/sum over logits", "Exp": "overflows above 11",
    "Log": "precision near 1", "Sin": "sinusoidal embedding: FP16 loses the phase of large arguments",
    "Cos": "sinusoidal embedding: FP16 loses the phase of large arguments",
    "CumSum": "position indices lose integers above 2048", "Range": "positions lose integers above 2048",
    "ArgMax": "code selection must see FP32 logits", "Resize": "scales input must be float32",
}
TYPE_AGNOSTIC = frozenset({"Shape", "Size"})  # read only the shape of their input: never cast it
SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan"})


@dataclass
class ConversionReport:
    """What `convert_to_fp16` did: node counts per precision, FP32 op types, weights clipped or flushed."""

    fp16_nodes: int = 0
    fp32_nodes: dict[str, int] = field(default_factory=dict)
    decomposed: dict[str, int] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)
    casts_added: int = 0
    weights_fp16: int = 0
    weights_clipped: int = 0
    weights_flushed_to_zero: int = 0


def _float_constant(node: onnx.NodeProto) -> bool:
    return (node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value"
            and node.attribute[0].t.data_type == TensorProto.FLOAT)


def _weight_cast(node: onnx.NodeProto, fp16_initializers: set[str]) -> bool:
    """A Cast of a float16-stored weight to float32 (`edge-export --weights float16`): storage, not an island."""
    to = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "to"), None)
    return node.op_type == "Cast" and node.input[0] in fp16_initializers and to == TensorProto.FLOAT


def _to_fp16(tensor: onnx.TensorProto, report: ConversionReport) -> onnx.TensorProto:
    """Float32 tensor → float16 tensor of the same name, clipping to ±65504 and counting what was lost."""
    values = numpy_helper.to_array(tensor)
    big = np.abs(values) > FP16_MAX
    tiny = (values != 0) & (np.abs(values) < FP16_TINY / 2)
    report.weights_clipped += int(big.sum())
    report.weights_flushed_to_zero += int(tiny.sum())
    report.weights_fp16 += 1
    return numpy_helper.from_array(np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16), tensor.name)


def _node_precisions(nodes: list[onnx.NodeProto], elem: dict[str, int], initializers: set[str],
                     keep: set[str], keep_ids: set[int], weight_casts: set[int]) -> dict[int, bool]:
    """{id(node): runs in FP16}. FP16_OPS run in FP16, except `keep` op types, the nodes in `keep_ids`, and a
    light op (not in HEAVY_OPS, not an activation) whose activation inputs all come out of FP32 islands:
    it joins the island (the eps Add after a variance, the affine Mul/Add after a GroupNorm, the timestep
    scaling before sin/cos stay FP32)."""
    fp16: dict[int, bool] = {}
    fp32_tensors: set[str] = set()
    produced: set[str] = set()  # float tensors computed by nodes (not constants, not graph inputs)
    for n in nodes:
        if _float_constant(n) or id(n) in weight_casts:
            continue
        outputs = [o for o in n.output if elem.get(o) == TensorProto.FLOAT]
        acts = [i for i in n.input if i in produced and i not in initializers]
        allowed = (n.op_type in FP16_OPS and n.domain in ("", "ai.onnx") and n.op_type not in keep
                   and id(n) not in keep_ids)
        follows = (n.op_type not in HEAVY_OPS | ACTIVATIONS and bool(acts) and all(a in fp32_tensors for a in acts))
        fp16[id(n)] = allowed and not follows
        if not fp16[id(n)] and n.op_type not in TYPE_AGNOSTIC:
            fp32_tensors.update(outputs)
        produced.update(outputs)
    return fp16


def _reduced_squares(nodes: list[onnx.NodeProto]) -> set[int]:
    """Mul(x, x) read by a ReduceSum/ReduceMean: a hand-written variance or norm, FP32 like Pow (its squares overflow)."""
    readers: dict[str, set[str]] = defaultdict(set)
    for n in nodes:
        for name in n.input:
            readers[name].add(n.op_type)
    return {id(n) for n in nodes if n.op_type == "Mul" and len(n.input) == 2 and n.input[0] == n.input[1]
            and readers[n.output[0]] & {"ReduceSum", "ReduceMean"}}


@dataclass
class Fp16Plan:
    """Where the FP16 graph holds values in FP16, named in `fp32`: the FP32 graph after the converter's rewrites
    (LayerNormalization decomposed, BatchNormalization folded), node for node what the FP16 copy was made from."""

    fp32: onnx.ModelProto
    outputs: dict[str, int] = field(default_factory=dict)  # float output of a node run in FP16 -> that node's index
    cast_down: dict[str, list[int]] = field(default_factory=dict)  # FP32 tensor cast to FP16 -> its FP16 readers
    weights: set[str] = field(default_factory=set)  # initializers and Constant outputs stored as float16


def convert_to_fp16(model: onnx.ModelProto, keep_fp32: Iterable[str] = ()) -> tuple[onnx.ModelProto, ConversionReport]:
    """FP16 copy of an FP32 model (see `convert_with_plan`)."""
    fp16, report, _plan = convert_with_plan(model, keep_fp32)
    return fp16, report


def convert_with_plan(model: onnx.ModelProto,
                      keep_fp32: Iterable[str] = ()) -> tuple[onnx.ModelProto, ConversionReport, Fp16Plan]:
    """FP16 copy of an FP32 model: FP16_OPS nodes in FP16, all others (plus `keep_fp32` op types) in FP32, and
    the plan saying which values it holds in FP16.

    Casts go in wherever a tensor crosses precisions (one per tensor and direction); graph inputs
    and outputs stay float32. LayerNormalization is decomposed first (its reductions stay FP32) and
    BatchNormalization folded into its Conv. Casts that only widen float16-stored weights are dropped where
    every reader runs in FP16. Raises Fp16Error for graphs with control-flow subgraphs.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    keep = set(keep_fp32)
    if any(n.op_type in SUBGRAPH_OPS for n in graph.node):
        raise Fp16Error("graphs with If/Loop/Scan subgraphs are not supported by the FP16 converter")
    report = ConversionReport()
    keep_names, count = decompose_layer_norms(model)
    if count:
        report.decomposed["LayerNormalization"] = count
    count = fold_batch_norms(model)
    if count:
        report.folded["BatchNormalization"] = count
    plan = Fp16Plan(copy.deepcopy(model))
    original = list(graph.node)  # one set of wrappers: id() of protobuf wrappers is only stable while held
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    elem = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    elem.update({t.name: t.data_type for t in graph.initializer})
    fp16_initializers = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT16}
    weight_casts = {id(n) for n in original if _weight_cast(n, fp16_initializers)}
    keep_ids = {id(n) for n in original if n.name in keep_names} | _reduced_squares(original)
    fp16 = _node_precisions(original, elem, {i.name for i in graph.initializer}, keep, keep_ids, weight_casts)
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in original:
        for name in n.input:
            consumers[name].append(n)
    outputs = {o.name for o in graph.output}

    def fp16_only(name: str) -> bool:  # a constant worth storing in FP16: every reader is an FP16 node
        return bool(consumers[name]) and name not in outputs and all(fp16[id(c)] for c in consumers[name])

    dtype: dict[str, int] = {i.name: TensorProto.FLOAT for i in graph.input if elem.get(i.name) == TensorProto.FLOAT}
    for k, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            if fp16_only(init.name):
                graph.initializer[k].CopyFrom(_to_fp16(init, report))
                plan.weights.add(init.name)
            dtype[init.name] = graph.initializer[k].data_type

    nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}
    alias: dict[str, str] = {}  # output of a dropped weight Cast -> the float16 weight itself

    def cast(name: str, to: int, reader: int) -> str:
        if to == TensorProto.FLOAT16:
            plan.cast_down.setdefault(name, []).append(reader)
        if (name, to) not in casts:
            out = f"{name}__to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=f"{out}__cast", to=to))
            casts[(name, to)] = out
            report.casts_added += 1
        return casts[(name, to)]

    for index, node in enumerate(original):
        if id(node) in weight_casts:
            if fp16_only(node.output[0]):
                alias[node.output[0]] = node.input[0]
                dtype[node.input[0]] = TensorProto.FLOAT16
            else:
                nodes.append(node)
                dtype[node.output[0]] = TensorProto.FLOAT
            continue
        node.input[:] = [alias.get(name, name) for name in node.input]
        if _float_constant(node):
            if fp16_only(node.output[0]):
                node.attribute[0].t.CopyFrom(_to_fp16(node.attribute[0].t, report))
                plan.weights.add(node.output[0])
            dtype[node.output[0]] = node.attribute[0].t.data_type
            nodes.append(node)
            continue
        want = TensorProto.FLOAT16 if fp16[id(node)] else TensorProto.FLOAT
        if node.op_type not in TYPE_AGNOSTIC:
            for k, name in enumerate(node.input):
                if name in dtype and dtype[name] != want:
                    node.input[k] = cast(name, want, index)
        nodes.append(node)
        if fp16[id(node)]:
            report.fp16_nodes += 1
        elif any(elem.get(o) == TensorProto.FLOAT for o in node.output):  # a real FP32 island, not Shape & co.
            report.fp32_nodes[node.op_type] = report.fp32_nodes.get(node.op_type, 0) + 1
        for name in node.output:
            if elem.get(name) == TensorProto.FLOAT:
                dtype[name] = want
                if fp16[id(node)]:
                    plan.outputs[name] = index

    for out in graph.output:  # FP16 results go back to float32 at the graph boundary
        if dtype.get(out.name) == TensorProto.FLOAT16:
            inner = f"{out.name}__fp16"
            for n in nodes:
                n.input[:] = [inner if i == out.name else i for i in n.input]
                n.output[:] = [inner if o == out.name else o for o in n.output]
            nodes.append(helper.make_node("Cast", [inner], [out.name], name=f"{out.name}__cast", to=TensorProto.FLOAT))
            report.casts_added += 1

    nodes = [copy.deepcopy(n) for n in nodes]  # detach from graph.node before clearing it
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # intermediate types changed; stale entries would contradict them
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise Fp16Error(f"the FP16 graph does not type-check: {exc}") from None
    return model, report, plan

