"""What a policy family hands the generic exporter: its graphs, chunking and manifest section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from edge.runtime.package import Chunking, PolicySection


@dataclass
class GraphExport:
    """One graph to export. `module(*inputs.values())` returns the outputs named in `output_names`.

    `samples` are validation inputs (normalised tensors with batch dim 1, keyed like `inputs`); the
    first one is also the tracing example. The exporter stores them with PyTorch's outputs.
    """

    name: str
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    samples: list[dict[str, np.ndarray]]
    tolerance: float = 1e-4


@dataclass
class FamilyExport:
    """A family's graphs, chunking and typed manifest `policy` section."""

    graphs: list[GraphExport]
    chunking: Chunking
    policy: PolicySection


@dataclass
class ExportOptions:
    """Knobs every family may read; families ignore what does not apply to them."""

    samples: int = 3
    seed: int = 0
    opset: int = 17
    weights: str = "float32"  # or "float16": weights rounded and stored as float16, computed in float32
    graph_rewrites: bool = True  # export/graph_rewrites.py: equivalent rewrites for ONNX Runtime's CPU kernels
    cpu_precision: str = "fp32"  # or "int8": export/cpu_precision.py, for the families in INT8_FAMILIES
    fps: int | None = None  # the policy's action rate, recorded as the manifest's dataset.fps
    serve_batches: tuple[int, ...] = ()  # batch sizes B >= 2 for `edge serve`: export/serve_batches.py
    extra: dict[str, Any] = field(default_factory=dict)


def random_inputs(shapes: dict[str, tuple[int, ...]], n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """n sets of standard-normal float32 inputs: plausible normalised observations for validation."""
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(n)]
