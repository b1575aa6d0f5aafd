"""Half-size packages: weights stored as float16 in the ONNX file, computed in float32.

The checkpoint's float32 tensors are first rounded to float16 precision (`round_to_float16`), so the
model that is exported and checked against ONNX Runtime *is* the rounded model. Each large float32
initializer whose values are then exactly representable in float16 is stored as float16 and cast
back to float32 by a Cast node at the top of the graph (`store_float16`): the file is about half the
size, the conversion is lossless, and ONNX Runtime folds the casts when it loads the graph, so
inference runs the same float32 kernels at the same speed. Initializers that are not exact in float16
(constants folded by the exporter from several weights) stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024  # smaller initializers are not worth a Cast node


@dataclass
class StorageReport:
    converted: int  # initializers now stored as float16
    kept: int  # float32 initializers left as they were (small, or not exact in float16)
    bytes_before: int
    bytes_after: int


def round_to_float16(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of `state_dict` with every float32 tensor rounded to the nearest float16 value (kept float32)."""
    return {k: v.half().float() if v.dtype == torch.float32 and _fits(v) else v for k, v in state_dict.items()}


def _fits(t: torch.Tensor) -> bool:
    """Whether rounding `t` to float16 keeps it finite (|x| <= 65504): larger tensors are left as they are."""
    return t.numel() == 0 or bool(t.abs().max() <= torch.finfo(torch.float16).max)


def store_float16(path: Path, min_elements: int = MIN_ELEMENTS) -> StorageReport:
    """Rewrite the ONNX file at `path` with its large, float16-exact float32 initializers stored as float16."""
    model = onnx.load(str(path))
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}  # initializers listed as inputs can be overridden: keep them
    kept_inits, casts, converted, kept, before, after = [], [], 0, 0, 0, 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            kept_inits.append(init)
            continue
        value = numpy_helper.to_array(init)
        half = value.astype(np.float16)
        before += value.nbytes
        if value.size < min_elements or not np.array_equal(half.astype(np.float32), value):
            kept_inits.append(init)
            after += value.nbytes
            kept += 1
            continue
        stored = numpy_helper.from_array(half, f"{init.name}.float16")
        kept_inits.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], name=f"{init.name}.to_float32",
                                      to=TensorProto.FLOAT))
        after += half.nbytes
        converted += 1
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return StorageReport(converted, kept, before, after)
