"""What FP16 does to a graph's values, measured on a CPU whose ONNX Runtime computes FP16 nodes in FP32.

ONNX Runtime's CPU provider has no FP16 kernels for most ops: it casts their inputs up and, finding the
converter's Cast(fp32->fp16) next to its own up-cast, removes both (insert_cast_transformer.cc), so running the
FP16 graph measures weight rounding only. Two measurements see FP16 activations instead:

- the range screen: the FP32 graph after the converter's rewrites, with every tensor the FP16 graph holds in
  FP16 exposed as an output; max |x| per tensor against FP16's range with a headroom, and the share of non-zero
  values below FP16's smallest normal;
- simulated FP16: the same graph with an explicit Cast(fp32->fp16)->Cast(fp16->fp32) pair after every node the
  FP16 graph runs in FP16 (and before every FP16 reader of an FP32 value) and FP16-rounded weights. Explicit
  pairs are kept by ONNX Runtime's optimiser, so activation rounding and overflow to inf reach the outputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.package import GraphSpec, PolicyPackage
from export.errors import Fp16Error
from export.fp16.convert import FP16_MAX, Fp16Plan

FP16_MIN_NORMAL = float(np.finfo(np.float16).tiny)  # 6.1e-5: below it FP16 keeps fewer than 11 significant bits
RANGE_HEADROOM = 2.0  # a tensor may reach at most FP16_MAX / RANGE_HEADROOM on the preflight's inputs
LISTED = 20  # tensors over the limit listed per graph (all are counted)
# Ops whose every output value is one of their inputs' values (or zero): fed FP16 values they give FP16 values,
# so rounding their output changes nothing and their range is their inputs'. Neither simulated nor screened.
EXACT_OPS = frozenset({"Concat", "DepthToSpace", "Expand", "Flatten", "Gather", "GatherElements", "GlobalMaxPool",
                       "Identity", "Max", "MaxPool", "Min", "Relu", "Reshape", "Slice", "SpaceToDepth", "Split",
                       "Squeeze", "Tile", "Transpose", "Unsqueeze", "Abs", "Neg"})


@dataclass
class TensorRange:
    """One FP16-held tensor over every screened run: max |x| of its finite values (inf if any is NaN) and how many
    non-zero values fall below FP16's smallest normal. An infinity already in FP32 (an attention mask's -inf
    from a Where) is exact in FP16 and not counted."""

    tensor: str
    node: str
    op: str
    max_abs: float = 0.0
    nonzero: int = 0
    below_normal: int = 0

    def update(self, value: np.ndarray) -> None:
        a = np.abs(np.asarray(value, np.float32))
        if not a.size:
            return
        peak = float(a.max())  # NaN if any is NaN
        if np.isnan(peak):
            peak = float("inf")
        elif np.isinf(peak):
            finite = a[np.isfinite(a)]
            peak = float(finite.max()) if finite.size else 0.0
        self.max_abs = max(self.max_abs, peak)
        nonzero = int(np.count_nonzero(a))
        self.nonzero += nonzero
        self.below_normal += int(np.count_nonzero(a < FP16_MIN_NORMAL)) - (a.size - nonzero)

    def named(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "node": self.node, "op": self.op, "max_abs": self.max_abs}


def _session(model: onnx.ModelProto, what: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own exception types
        raise Fp16Error(f"ONNX Runtime (CPU) cannot load the {what}: {exc}") from None


def rounded_outputs(plan: Fp16Plan) -> dict[str, int]:
    """The FP16 nodes' outputs that FP16 rounds (not those of EXACT_OPS), with the producing node's index."""
    nodes = plan.fp32.graph.node
    return {name: k for name, k in plan.outputs.items() if nodes[k].op_type not in EXACT_OPS}


def held_tensors(plan: Fp16Plan) -> dict[str, TensorRange]:
    """Every activation the FP16 graph holds in FP16 (but EXACT_OPS outputs, covered by their inputs), by its name
    in the rewritten FP32 graph, with its producer."""
    graph = plan.fp32.graph
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    inputs = {i.name for i in graph.input}
    producer = {o: (k, n) for k, n in enumerate(graph.node) for o in n.output}
    ranges = {}
    for name in sorted({*rounded_outputs(plan), *plan.cast_down} - constants,
                       key=lambda t: producer[t][0] if t in producer else -1):
        if name in producer:
            k, node = producer[name]
            ranges[name] = TensorRange(name, node.name or f"node {k}", node.op_type)
        elif name in inputs:
            ranges[name] = TensorRange(name, "(graph input)", "")
    return ranges


class RangeScreen:
    """Runs the rewritten FP32 graph with every FP16-held tensor exposed; `run` returns the declared outputs
    (the FP32 reference) and accumulates each tensor's range."""

    def __init__(self, plan: Fp16Plan, graph: str) -> None:
        model = copy.deepcopy(plan.fp32)
        self.ranges = held_tensors(plan)
        self.outputs = [o.name for o in model.graph.output]
        inputs = {i.name for i in model.graph.input}
        self._exposed = [t for t in self.ranges if t not in inputs and t not in self.outputs]
        model.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in self._exposed)
        self._session = _session(model, f"range screen of graph {graph!r}")
        self.runs = 0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.outputs + self._exposed
        values = dict(zip(names, self._session.run(names, feeds)))
        for name, r in self.ranges.items():
            r.update(values[name] if name in values else feeds[name])
        self.runs += 1
        return {n: values[n] for n in self.outputs}

    def summary(self, headroom: float = RANGE_HEADROOM) -> dict[str, Any]:
        """The manifest's `range` record: tensors and runs screened, the largest tensor, those over the limit."""
        limit = FP16_MAX / headroom
        ranked = sorted(self.ranges.values(), key=lambda r: r.max_abs, reverse=True)
        over = [r for r in ranked if not r.max_abs <= limit]
        nonzero = sum(r.nonzero for r in ranked)
        return {"tensors": len(ranked), "runs": self.runs, "limit": limit,
                "largest": ranked[0].named() if ranked else None, "over_limit_count": len(over),
                "over_limit": [r.named() for r in over[:LISTED]],
                "below_normal_share": sum(r.below_normal for r in ranked) / nonzero if nonzero else 0.0}


def simulated_fp16(plan: Fp16Plan) -> onnx.ModelProto:
    """The rewritten FP32 graph computing like the FP16 one stores: FP16-rounded weights, and a
    Cast(fp32->fp16)->Cast(fp16->fp32) pair after every FP16 node's output (EXACT_OPS need none) and before
    every FP16 reader of an FP32 value (inf where FP16 overflows)."""
    model = copy.deepcopy(plan.fp32)
    graph = model.graph

    def rounded(tensor: onnx.TensorProto) -> onnx.TensorProto:
        values = np.clip(numpy_helper.to_array(tensor), -FP16_MAX, FP16_MAX)  # the converter clips too
        return numpy_helper.from_array(values.astype(np.float16).astype(np.float32), tensor.name)

    for k, init in enumerate(graph.initializer):
        if init.name in plan.weights:
            graph.initializer[k].CopyFrom(rounded(init))
    nodes = [copy.deepcopy(n) for n in graph.node]
    for n in nodes:
        if n.op_type == "Constant" and n.output[0] in plan.weights:
            n.attribute[0].t.CopyFrom(rounded(n.attribute[0].t))

    def pair(src: str, dst: str) -> list[onnx.NodeProto]:
        return [helper.make_node("Cast", [src], [f"{dst}__sim_fp16"], name=f"{dst}__sim_fp16", to=TensorProto.FLOAT16),
                helper.make_node("Cast", [f"{dst}__sim_fp16"], [dst], name=f"{dst}__sim_fp32", to=TensorProto.FLOAT)]

    before: dict[int, list[onnx.NodeProto]] = {}
    after: dict[int, list[onnx.NodeProto]] = {}
    for name, k in rounded_outputs(plan).items():  # every reader, and the graph output, sees the FP16 value
        raw = f"{name}__fp32_value"
        nodes[k].output[:] = [raw if o == name else o for o in nodes[k].output]
        after.setdefault(k, []).extend(pair(raw, name))
    for name, readers in plan.cast_down.items():  # only the FP16 readers see it rounded
        rounded_name = f"{name}__as_fp16"
        before.setdefault(min(readers), []).extend(pair(name, rounded_name))
        for k in readers:
            nodes[k].input[:] = [rounded_name if i == name else i for i in nodes[k].input]
    del graph.node[:]
    graph.node.extend(m for k, n in enumerate(nodes) for m in [*before.get(k, []), n, *after.get(k, [])])
    del graph.value_info[:]
    return model


class Simulated:
    """The simulated FP16 graph in ONNX Runtime on the CPU; `run` gives every output."""

    def __init__(self, plan: Fp16Plan, graph: str) -> None:
        self._session = _session(simulated_fp16(plan), f"simulated FP16 graph {graph!r}")
        self.outputs = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self._session.run(self.outputs, feeds)))


class PreflightBackend(Backend):
    """A backend over the preflight's own graphs (range screens, or simulated FP16 graphs), so that a policy runner
    runs on them: the FP32 runner screens what it computes, the FP16 runner computes with FP16 activations."""

    name = "FP16 preflight (ONNX Runtime CPU)"

    def __init__(self, graphs: dict[str, RangeScreen | Simulated]) -> None:
        self.graphs = graphs

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        return _PreflightSession(graph, package.manifest.graphs[graph], self.graphs[graph])


class _PreflightSession(GraphSession):
    def __init__(self, name: str, spec: GraphSpec, graph: RangeScreen | Simulated) -> None:
        super().__init__(name, spec)
        self._graph = graph

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._graph.run(feeds)
