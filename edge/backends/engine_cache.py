"""Where TensorRT engines live beside a package, what they are keyed by, and whether one may be used.

An engine only runs on the TensorRT version and GPU it was built with, in the precision it was
built for, from the exact ONNX bytes it was parsed from. Layout:

    <package>/engines/trt<version>_<gpu>_sm<cc>_<precision>/<graph>.engine   the serialized engine
                                                           /<graph>.json     its EngineKey + engine sha256
                                                           /timing.cache     TensorRT's timing cache

Nothing here imports TensorRT or CUDA, so cache keys and stale-engine detection are tested on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import BackendError
from edge.package import PolicyPackage, sha256_file

ENGINE_DIR = "engines"
PRECISIONS = ("fp32", "fp16")
STRONGLY_TYPED_FROM = (10, 12)  # BuilderFlag.FP16 is deprecated from here and gone in TensorRT 11
TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a different value in any field means a different engine."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    onnx_sha256: str

    def directory(self) -> str:
        """The per-device, per-precision folder name (the ONNX hash is checked from the .json)."""
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu).strip("-").lower() or "gpu"
        return f"trt{self.tensorrt}_{gpu}_sm{self.compute_capability.replace('.', '')}_{self.precision}"


@dataclass
class EngineStatus:
    """`state` is "fresh" (use it), "missing" (build it) or "stale" (never used; rebuild explicitly)."""

    graph: str
    state: str
    path: Path
    reason: str


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def strongly_typed(tensorrt_version: str) -> bool:
    """FP16 through a strongly typed network from the FP16 ONNX (TensorRT >= 10.12), not the FP16 flag."""
    return version_tuple(tensorrt_version) >= STRONGLY_TYPED_FROM


def cache_root(package: PolicyPackage, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir) if cache_dir is not None else package.path / ENGINE_DIR


def fp16_graph(package: PolicyPackage, graph: str) -> tuple[Path, str]:
    """The FP16 copy of a graph that `python -m export.fp16` wrote and recorded, with its verified sha256."""
    graphs = package.manifest.fp16_preflight.graphs if package.manifest.fp16_preflight is not None else {}
    if graph not in graphs:
        raise BackendError(f"{package.path} has no FP16 copy of graph {graph!r}: run `python -m export.fp16 "
                           f"{package.path}` on the workstation (or export with --fp16-check) and copy the package again")
    path, sha = package.path / graphs[graph].file, graphs[graph].sha256
    if not path.is_file() or sha256_file(path) != sha:
        raise BackendError(f"graph {graph!r}: FP16 ONNX {path} is missing or does not match the sha256 the "
                           "FP16 preflight recorded; re-run `python -m export.fp16` on the package")
    return path, sha


def engine_source(package: PolicyPackage, graph: str, precision: str, tensorrt_version: str) -> tuple[Path, str]:
    """The ONNX file an engine is built from and its sha256: the FP16 copy for strongly typed FP16 builds."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp16" and strongly_typed(tensorrt_version):
        try:
            return fp16_graph(package, graph)
        except BackendError as exc:
            raise BackendError(f"TensorRT {tensorrt_version} builds FP16 only from an FP16 ONNX (strongly typed "
                               f"network): {exc}") from None
    return package.graph_path(graph), package.manifest.graphs[graph].sha256


def engine_key(package: PolicyPackage, graph: str, precision: str, tensorrt_version: str, gpu: str,
               compute_capability: str) -> EngineKey:
    return EngineKey(tensorrt_version, gpu, compute_capability, precision,
                     engine_source(package, graph, precision, tensorrt_version)[1])


def engine_files(root: Path, key: EngineKey, graph: str) -> tuple[Path, Path]:
    folder = root / key.directory()
    return folder / f"{graph}.engine", folder / f"{graph}.json"


def check_engine(root: Path, key: EngineKey, graph: str) -> EngineStatus:
    """Is there a usable engine for `graph` under `key`? Explains a missing or stale one in words."""
    engine, meta = engine_files(root, key, graph)
    if not engine.exists() and not meta.exists():
        others = sorted(p.parent.name for p in root.glob(f"*/{graph}.engine")) if root.is_dir() else []
        found = f" (engines found for other builds: {', '.join(others)})" if others else ""
        return EngineStatus(graph, "missing", engine,
                            f"no engine for graph {graph!r} built for {key.directory()}{found}")
    if not engine.exists() or not meta.exists():
        return EngineStatus(graph, "stale", engine, f"{engine if engine.exists() else meta} has no "
                                                    f"{'metadata' if engine.exists() else 'engine'} beside it")
    try:
        recorded = json.loads(meta.read_text())
        built = EngineKey(**recorded["key"])
    except (ValueError, KeyError, TypeError) as exc:
        return EngineStatus(graph, "stale", engine, f"{meta} is unreadable ({exc})")
    if built != key:
        diff = [f"{f.name} {getattr(built, f.name)!r} -> {getattr(key, f.name)!r}"
                for f in dataclasses.fields(key) if getattr(built, f.name) != getattr(key, f.name)]
        return EngineStatus(graph, "stale", engine, f"engine {engine} was built for different inputs: {'; '.join(diff)}")
    if sha256_file(engine) != recorded.get("engine_sha256"):
        return EngineStatus(graph, "stale", engine, f"engine {engine} changed after it was built (truncated or modified)")
    return EngineStatus(graph, "fresh", engine, f"engine {engine} matches {key.directory()}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes through a temporary file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_engine(root: Path, key: EngineKey, graph: str, data: bytes, details: dict[str, Any]) -> Path:
    """Store an engine and its metadata (key, engine sha256, `details` such as build seconds)."""
    engine, meta = engine_files(root, key, graph)
    write_atomic(engine, data)
    record = {"key": dataclasses.asdict(key), "engine_sha256": sha256_file(engine),
              "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **details}
    write_atomic(meta, json.dumps(record, indent=2).encode())
    return engine
