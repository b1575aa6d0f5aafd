"""Would TensorRT 10.3's ONNX parser take this graph? Checked on the ONNX file, without TensorRT.

Every node's op type, its data type and the restrictions that can be read off the graph are checked
against onnx-tensorrt's operator support table (edge/data/tensorrt/onnx_operators_10.3.json, with its
source), plus the opset range, static input/output shapes and no unsupported INT64 (or other type) use.
`edge-export`, the FP16 preflight, `edge check` and `edge build` run it; each problem names the graph,
the node and what is wrong. onnx is imported when a graph is checked, not with this module: `edge --help` and every
command's parser stay free of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calibration.strict_files import read_json
from edge.errors import PackageError
from edge.runtime.package import PolicyPackage

if TYPE_CHECKING:
    import onnx

TABLE = Path(__file__).resolve().parents[2] / "data" / "tensorrt" / "onnx_operators_10.3.json"
TYPE_NAMES = {"FLOAT": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16"}  # onnx's TensorProto name -> the table's


@dataclass(frozen=True)
class Problem:
    """One reason TensorRT would not parse a graph."""

    graph: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"graph {self.graph!r}, {self.node}: {self.message}"


@lru_cache(maxsize=1)
def support_table() -> dict[str, Any]:
    """The operator table (TensorRT version, opset range, per-op support, types and checks) and its source."""
    return read_json(TABLE, PackageError, "TensorRT operator table")


def _node_label(index: int, node: onnx.NodeProto) -> str:
    return f"node {index} {node.name or '(unnamed)'!r} ({node.op_type})"


def _static(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    return value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)


def _node_problems(node: onnx.NodeProto, rule: dict[str, Any], constants: set[str]) -> list[str]:
    """Restrictions from the table's `check` entry that this node breaks."""
    from onnx import helper

    problems = []
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for i in rule.get("const_inputs", []):
        if i < len(node.input) and node.input[i] and node.input[i] not in constants:
            problems.append(f"input {i} ({node.input[i]!r}) must be an initializer or a Constant")
    for name, allowed in rule.get("attr_in", {}).items():
        value = attrs.get(name)
        value = value.decode() if isinstance(value, bytes) else value
        if value is not None and value not in allowed:
            problems.append(f"attribute {name}={value!r} is not supported (allowed: {allowed})")
    for name in rule.get("ones", []):
        if any(v != 1 for v in attrs.get(name, [])):
            problems.append(f"attribute {name} must be empty or all ones")
    for name in rule.get("attr_absent", []):
        if name in attrs:
            problems.append(f"attribute {name} is not supported")
    used = [o for o in node.output if o]
    if "max_outputs" in rule and len(used) > rule["max_outputs"]:
        problems.append(f"only the first {rule['max_outputs']} output(s) are supported, {len(used)} are used")
    return problems


def check_model(model: onnx.ModelProto, graph: str) -> list[Problem]:
    """Everything in `model` that TensorRT 10.3's ONNX parser would refuse; empty when it would parse."""
    import onnx
    from onnx import TensorProto

    table = support_table()
    version = f"TensorRT {table['tensorrt']}"
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not table["opset_min"] <= opset <= table["opset_max"]:
        problems.append(Problem(graph, "model", f"opset {opset} is outside {version}'s {table['opset_min']}.."
                                                f"{table['opset_max']}"))
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        initializers = {i.name for i in model.graph.initializer}
        for v in values:
            if v.name not in initializers and not _static(v):
                problems.append(Problem(graph, f"{kind} {v.name!r}", "has a dynamic or unknown shape; "
                                                                    "TensorRT engines here are built static"))
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        return [*problems, Problem(graph, "model", f"ONNX shape inference failed: {exc}")]
    elem = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input, *inferred.output]}
    elem.update({t.name: t.data_type for t in model.graph.initializer})
    constants = {i.name for i in model.graph.initializer}
    constants.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    for index, node in enumerate(model.graph.node):
        label = _node_label(index, node)
        entry = table["operators"].get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if entry is None or not entry["supported"]:
            where = f"domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else "the operator table"
            problems.append(Problem(graph, label, f"{node.op_type} is not supported by {version}'s ONNX parser "
                                                  f"({where})"))
            continue
        typed = next((n for n in node.input if n), None) or next((n for n in node.output if n), None)
        onnx_name = TensorProto.DataType.Name(elem.get(typed, 0))
        type_name = TYPE_NAMES.get(onnx_name, onnx_name)
        if typed in elem and entry["types"] and type_name not in entry["types"]:
            problems.append(Problem(graph, label, f"{type_name} tensor {typed!r} is not a supported type for "
                                                  f"{node.op_type} in {version} ({', '.join(entry['types'])})"))
        problems += [Problem(graph, label, p) for p in _node_problems(node, entry.get("check", {}), constants)]
    return problems


def check_file(path: str | Path, graph: str) -> list[Problem]:
    """`check_model` on an ONNX file."""
    import onnx

    return check_model(onnx.load(str(path)), graph)


def package_problems(package: PolicyPackage, precision: str = "fp32") -> list[Problem]:
    """Problems in every graph an engine of `precision` would be built from (the FP16 copies for fp16)."""
    from edge.runtime.backends.engine_cache import engine_source

    return [p for graph in package.manifest.graphs for p in check_file(engine_source(package, graph, precision)[0], graph)]


def check_package_graphs(package: PolicyPackage, precision: str = "fp32") -> None:
    """PackageError naming every node TensorRT 10.3 would refuse, if any."""
    problems = package_problems(package, precision)
    if problems:
        raise PackageError(f"{package.path}: TensorRT {support_table()['tensorrt']} would not parse it: "
                           + "; ".join(map(str, problems)))
