"""torch → ONNX for one graph, then the ONNX checker and an ONNX Runtime vs PyTorch comparison."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import torch

from edge.runtime.package import TensorSpec
from export.errors import ExportError
from export.families.base import GraphExport


def torch_outputs(graph: GraphExport, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the PyTorch module on one sample; outputs keyed by `graph.output_names`."""
    with torch.no_grad():
        out = graph.module(*(torch.from_numpy(sample[n]) for n in graph.input_names))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return {name: t.detach().numpy().astype(np.float32) for name, t in zip(graph.output_names, out)}


@contextmanager
def mha_fast_path_off() -> Iterator[None]:
    """PyTorch's fused multi-head-attention path off while a graph is traced (it does not export), then as it was:
    a global switch, so it is scoped to the export and importing a family changes nothing."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def export_graph(graph: GraphExport, path: Path, opset: int, fold_batch_norm: bool = True
                 ) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Write `graph` as ONNX (batch 1, fixed shapes) and return its input/output specs.

    With `fold_batch_norm` the exporter folds eval-mode BatchNorm into the preceding convolution;
    without, BatchNormalization stays a node (ONNX Runtime and TensorRT fuse it when they load)."""
    example = tuple(torch.from_numpy(graph.samples[0][n]) for n in graph.input_names)
    graph.module.eval()
    with warnings.catch_warnings(), torch.no_grad(), mha_fast_path_off():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation and tracer notices
        try:
            torch.onnx.export(graph.module, example, str(path), input_names=graph.input_names,
                              output_names=graph.output_names, opset_version=opset, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.EVAL if fold_batch_norm else torch.onnx.TrainingMode.PRESERVE,
                              dynamo=False)
        except Exception as exc:
            raise ExportError(f"graph {graph.name!r}: torch.onnx.export failed: {exc}") from exc
    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"graph {graph.name!r}: the ONNX checker rejected the export: {exc}") from None

    def specs(values: list) -> list[TensorSpec]:
        return [TensorSpec(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim],
                           onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name) for v in values]

    return specs(model.graph.input), specs(model.graph.output)


def compare_with_onnxruntime(graph: GraphExport, path: Path, expected: list[dict[str, np.ndarray]]) -> float:
    """Max |ORT - PyTorch| over all samples and outputs; ExportError beyond the graph's tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, (sample, ref) in enumerate(zip(graph.samples, expected)):
        got = dict(zip(graph.output_names, session.run(graph.output_names, sample)))
        for name in graph.output_names:
            err = float(np.max(np.abs(got[name] - ref[name]))) if ref[name].size else 0.0
            if not err <= graph.tolerance:  # also catches NaN
                raise ExportError(f"graph {graph.name!r}: ONNX Runtime differs from PyTorch on output {name!r} of "
                                  f"sample {i} by {err:.3g} (tolerance {graph.tolerance:g})")
            worst = max(worst, err)
    return worst
