"""Serving graphs: static batch-B copies of a package's graphs, in the package's `serve/` folder (optional).

`edge-export --serve-batch 2,4,8` exports, beside the batch-1 graphs and through the same rewrites and checks,
each graph again with batch B, into `<package>/serve/` with its own `serve/manifest.json` (`ServeBatches`). The
package's manifest.json is not touched, so the package identity (its sha256) is the same with or without them and
the robot, which never reads `serve/`, can carry the package without it. The folder is bound to its source by the
sha256 of every batch-1 graph it was exported beside (`source_graphs`): a re-export with other weights leaves it
refused, a manifest-only change (the FP16 preflight, `edge migrate`) does not. `edge serve` runs a batch of n rows
on the smallest B >= n (docs/serving.md, "Batching"). Every field is typed and range-checked at load, errors
naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.strict_files import brief, read_json
from edge.errors import PackageError
from edge.runtime.files import write_atomic
from edge.runtime.package.checks import check_digest, check_inside
from edge.runtime.package.directory import PolicyPackage, check_embedded, sha256_file
from edge.runtime.package.fields import field_ref
from edge.runtime.package.manifest import GraphSpec
from edge.runtime.package.parsing import parse_field

SERVE_DIR = "serve"
SERVE_FORMAT = "edge-serve-batches"
SERVE_VERSION = 1
MAX_SERVE_BATCH = 64  # edge serve's --max-batch limit


@dataclass
class BatchGraphs:
    """Every graph of the package exported again with batch `batch`; `max_abs_error`: per graph, the export-time
    max |row r of the batch-B graph (ONNX Runtime) - PyTorch's batch-1 output for row r| over the samples."""

    batch: int
    graphs: dict[str, GraphSpec]
    max_abs_error: dict[str, float] = field(default_factory=dict)


@dataclass
class ServeBatches:
    """serve/manifest.json: the batch graphs and the batch-1 graphs (name → sha256) they were exported beside."""

    source_graphs: dict[str, str]
    batches: list[BatchGraphs]
    format: str = SERVE_FORMAT
    version: int = SERVE_VERSION

    @property
    def sizes(self) -> list[int]:
        return [b.batch for b in self.batches]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def _check(s: ServeBatches, package: PolicyPackage) -> None:
    """Every rule across fields, against the package the folder sits in."""
    if s.format != SERVE_FORMAT or s.version != SERVE_VERSION:
        raise PackageError(f"{field_ref('format')}/{field_ref('version')} are {brief(s.format)}/{s.version}; this "
                           f"runtime reads {SERVE_FORMAT} version {SERVE_VERSION}")
    graphs = package.manifest.graphs
    if set(s.source_graphs) != set(graphs):
        raise PackageError(f"{field_ref('source_graphs')} lists {sorted(s.source_graphs)}, the package's graphs are "
                           f"{sorted(graphs)}")
    for name, digest in s.source_graphs.items():
        check_digest(digest, f"source_graphs.{name}")
        if digest != graphs[name].sha256:
            raise PackageError(f"{field_ref(f'source_graphs.{name}')} is not the package's graph {name!r} (sha256 "
                               f"{digest[:12]}... vs {graphs[name].sha256[:12]}...): these batch graphs were exported "
                               "beside other weights; export again with --serve-batch, or delete serve/ to serve rows "
                               "one after another")
    if not s.batches:
        raise PackageError(f"{field_ref('batches')} is empty")
    for i, b in enumerate(s.batches):
        where = f"batches[{i}]"
        if not 2 <= b.batch <= MAX_SERVE_BATCH:
            raise PackageError(f"{field_ref(where + '.batch')} is {b.batch}; it must be within 2..{MAX_SERVE_BATCH}")
        if i and b.batch <= s.batches[i - 1].batch:
            raise PackageError(f"{field_ref(where + '.batch')} is {b.batch}; batches are listed once each, smallest "
                               "first")
        if set(b.graphs) != set(graphs) or set(b.max_abs_error) != set(graphs):
            raise PackageError(f"{field_ref(where + '.graphs')} lists {sorted(b.graphs)} (errors for "
                               f"{sorted(b.max_abs_error)}); the package's graphs are {sorted(graphs)}")
        for name, spec in b.graphs.items():
            _check_graph(spec, graphs[name], b.batch, f"{where}.graphs.{name}")
            err = b.max_abs_error[name]
            if not (math.isfinite(err) and 0 <= err <= package.manifest.validation.tolerance):
                raise PackageError(f"{field_ref(f'{where}.max_abs_error.{name}')} is {brief(err)}; it must be within "
                                   f"0..{package.manifest.validation.tolerance:g} (validation.tolerance)")


def _check_graph(spec: GraphSpec, source: GraphSpec, batch: int, where: str) -> None:
    """The batch graph has the source graph's opset, tensor names and shapes, with `batch` as the first dimension."""
    check_inside(spec.file, where + ".file")
    check_digest(spec.sha256, where + ".sha256")
    if spec.opset != source.opset:
        raise PackageError(f"{field_ref(where + '.opset')} is {spec.opset}; the batch-1 graph's is {source.opset}")
    for kind in ("inputs", "outputs"):
        have, want = getattr(spec, kind), {t.name: t for t in getattr(source, kind)}
        if sorted(t.name for t in have) != sorted(want):
            raise PackageError(f"{field_ref(f'{where}.{kind}')} names {[t.name for t in have]}; the batch-1 graph's "
                               f"are {list(want)}")
        for k, t in enumerate(have):
            expected = [batch, *want[t.name].shape[1:]]
            if t.dtype != "float32" or t.shape != expected:
                raise PackageError(f"{field_ref(f'{where}.{kind}[{k}]')} ({t.name}) is {t.dtype} {t.shape}; with batch "
                                   f"{batch} the batch-1 graph's tensor is float32 {expected}")


def parse_batches(data: Any, package: PolicyPackage) -> ServeBatches:
    """serve/manifest.json's JSON data, typed and checked against `package`; PackageError naming the field."""
    s = parse_field(ServeBatches, data, "")
    _check(s, package)
    return s


def load_batches(package: PolicyPackage) -> ServeBatches | None:
    """The package's serving graphs, every file checked against its sha256; None when the package has none."""
    root = package.path / SERVE_DIR
    path = root / "manifest.json"
    if not path.exists():
        return None
    try:
        batches = parse_batches(read_json(path, PackageError, "serve manifest"), package)
    except PackageError as exc:
        raise PackageError(f"{path}: {exc}") from None
    for b in batches.batches:
        for name, spec in b.graphs.items():
            f = root / spec.file
            if not f.is_file() or sha256_file(f) != spec.sha256:
                raise PackageError(f"{path}: batch-{b.batch} graph {name!r}: {f} is missing or does not match its "
                                   "sha256; export again with --serve-batch")
            check_embedded(f, f"batch-{b.batch} graph {name!r}")
    return batches


def no_tensorrt_engines(package_path: Path) -> str:
    """Why a package with serve/ batch graphs cannot be served on TensorRT (one message for edge serve and its model)."""
    return (f"{package_path}: its serve/ batch graphs have no TensorRT engines (edge build builds the batch-1 graphs "
            "only); serve with --backend auto or onnxruntime, or without serve/")


def batch_view(package: PolicyPackage, batch: BatchGraphs) -> PolicyPackage:
    """The package as a backend loads batch `batch.batch`'s graphs: its manifest with those graphs, rooted in serve/
    (no FP16 copies: the batch graphs run in FP32 on ONNX Runtime)."""
    manifest = dataclasses.replace(package.manifest, graphs=batch.graphs, fp16_preflight=None)
    return PolicyPackage(package.path / SERVE_DIR, manifest)


def write_batches(package_root: Path, batches: ServeBatches) -> None:
    """Write serve/manifest.json atomically (the batch graphs are already in serve/)."""
    write_atomic(Path(package_root) / SERVE_DIR / "manifest.json", batches.to_json())
