"""`edge-export --serve-batch 2,4,8`: each graph exported again with a static batch B into the package's serve/.

A batch-B graph is the same module traced on B rows (static shapes, so the graph rewrites, the TensorRT check and
static engines apply as at batch 1), and it is checked row by row against PyTorch's batch-1 outputs: row r of
validation sample s is batch-1 sample (s + r) mod samples, so the rows of a checked batch differ and a graph that
mixed rows up would fail. edge/runtime/package/batches.py reads what this writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from edge.runtime.package import GraphSpec
from edge.runtime.package.batches import MAX_SERVE_BATCH, SERVE_DIR, BatchGraphs, ServeBatches
from export.errors import ExportError
from export.families.base import GraphExport

ExportFile = Callable[[GraphExport, Path, list[dict[str, np.ndarray]], str], tuple[GraphSpec, float]]


def check_sizes(sizes: tuple[int, ...], cpu_precision: str) -> None:
    """Refuse batch sizes out of range or repeated, and batch graphs beside INT8 ones."""
    if any(isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= MAX_SERVE_BATCH for b in sizes) \
            or len(set(sizes)) != len(sizes):
        raise ExportError(f"serve batches {list(sizes)}: each must be an integer in 2..{MAX_SERVE_BATCH}, once")
    if sizes and cpu_precision != "fp32":
        raise ExportError("--serve-batch with --cpu-precision int8 is not offered: the batch graphs would compute "
                          "in FP32 while the package's INT8")


def _stack(rows: list[dict[str, np.ndarray]], batch: int) -> list[dict[str, np.ndarray]]:
    """Per sample s, rows (s + r) mod n for r < batch concatenated on the batch axis."""
    n = len(rows)
    return [{k: np.concatenate([rows[(s + r) % n][k] for r in range(batch)]) for k in rows[0]} for s in range(n)]


def export_batches(graphs: list[GraphExport], expected: dict[str, list[dict[str, np.ndarray]]],
                   specs: dict[str, GraphSpec], root: Path, sizes: tuple[int, ...], export_file: ExportFile,
                   progress: Callable[[str], None]) -> ServeBatches:
    """Export every graph at every batch size into root/serve/; `expected`: PyTorch's batch-1 outputs per sample,
    `specs`: the batch-1 graphs written (their sha256 binds the folder to them). `export_file(graph, path,
    expected, label)` is the pipeline's own export, rewrite and check of one graph."""
    (root / SERVE_DIR).mkdir()
    batches = []
    for b in sorted(sizes):
        specs_b, errors = {}, {}
        for graph in graphs:
            batched = replace(graph, name=f"{graph.name}_b{b}", samples=_stack(graph.samples, b))
            label = f"[batch {b}] {graph.name!r}"
            progress(f"{label}: exporting with batch {b}")
            specs_b[graph.name], errors[graph.name] = export_file(
                batched, root / SERVE_DIR / f"{batched.name}.onnx", _stack(expected[graph.name], b), label)
        batches.append(BatchGraphs(b, specs_b, errors))
    return ServeBatches({name: spec.sha256 for name, spec in specs.items()}, batches)
