"""Where TensorRT engines live beside a package, what they are keyed by, and whether one may be used.

An engine only runs on the TensorRT version and GPU it was built with, in the precision it was
built for, from the exact ONNX bytes it was parsed from. The GPU is its name and compute capability plus
what tells two devices of the same name apart: SM count, total memory rounded up to a power of two GiB (a
Jetson's memory is shared with the system, so the exact figure moves with carve-outs; its modules come in 4, 8,
16, 32 and 64 GB), CUDA runtime and driver versions. The bindings expose no
getInferLibVersion, so TensorRT is `tensorrt.__version__`. Layout:

    <engine dir>/trt<version>_<gpu>_sm<cc>_<precision>/<graph>.engine   the serialized engine
                                                      /<graph>.json     its EngineKey, build options, sha256
                                                      /timing.cache     TensorRT's timing cache

The engine dir is `<package>/engines`, or the one given to `edge build --engine-dir` (then the runtime is
pointed at it with `engine_dir=` / `$EDGE_ENGINE_DIR`). Nothing here imports TensorRT or CUDA, so cache
keys, the precision rule and stale-engine detection are tested on CPU.

The precision rule, the same on every TensorRT >= 10.0 (`NetworkDefinitionCreationFlag::kSTRONGLY_TYPED`
exists since 10.0: include/NvInfer.h on release/10.3):

- FP16: a strongly typed network parsed from the FP16 ONNX that `python -m export.fp16` wrote and checked
  on the CPU, so what the preflight validated is what the engine runs. No `BuilderFlag.FP16` (deprecated in
  10.12, gone in 11.0: NvInfer.h on release/10.12 and release/11.0).
- FP32: the FP32 ONNX, weakly typed on 10.x (the 10.x ONNX parser's LayerNormalization importer calls
  `setComputePrecision`, which strongly typed networks reject: onnx-tensorrt onnxOpImporters.cpp at the
  release/10.1-GA tag, NvInfer.h release/10.3), always strongly typed on 11.x (the flag is ignored there).
- Both: `BuilderFlag.TF32` cleared. TF32 is enabled by default (NvInfer.h, BuilderFlag::kTF32) and Orin is
  Ampere (sm_87), where it would round FP32 matmul inputs to 10-bit mantissas; Polygraphy clears it unless
  asked (tools/Polygraphy/polygraphy/backend/trt/config.py, release/10.3).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.strict_files import brief, read_json
from edge.errors import BackendError, PackageError
from edge.runtime.backends.cuda_memory import GpuInfo
from edge.runtime.files import write_atomic
from edge.runtime.package import PolicyPackage, check_embedded, sha256_file

ENGINE_DIR = "engines"
ENGINE_DIR_ENV = "EDGE_ENGINE_DIR"
PRECISIONS = ("fp32", "fp16")
MIN_TENSORRT = (10, 0)  # tensor-address I/O (set_tensor_address / execute_async_v3) and kSTRONGLY_TYPED
ALWAYS_STRONGLY_TYPED_FROM = (11, 0)  # kSTRONGLY_TYPED deprecated and ignored: NvInfer.h release/11.0
TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a different value in any field means a different engine."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    onnx_sha256: str
    builder_flags: str
    sm_count: int | None = None  # None: recorded by an older key (such an engine is stale)
    memory_gib: int | None = None
    cuda_runtime: str | None = None
    cuda_driver: str | None = None

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


@dataclass(frozen=True)
class BuildOptions:
    """Builder settings that change the engine but not whether it may run: `edge build` rebuilds on a change."""

    workspace_mb: int = 0  # 0: TensorRT's default (the device's memory)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def check_version(tensorrt_version: str) -> None:
    """BackendError unless this TensorRT has the APIs the backend uses (10.0 and later)."""
    if version_tuple(tensorrt_version) < MIN_TENSORRT:
        raise BackendError(f"TensorRT {tensorrt_version} is too old: the backend needs TensorRT >= 10.0 "
                           "(JetPack 6 ships 10.3)")


def strongly_typed(precision: str, tensorrt_version: str) -> bool:
    """Is the network strongly typed? FP16 always (from the FP16 ONNX); FP32 only where TensorRT forces it (11+)."""
    return precision == "fp16" or version_tuple(tensorrt_version) >= ALWAYS_STRONGLY_TYPED_FROM


def builder_flags(precision: str, tensorrt_version: str) -> str:
    """The builder settings the precision rule gives, as recorded in an engine's key."""
    return ",".join((["strongly_typed"] if strongly_typed(precision, tensorrt_version) else []) + ["tf32_off"])


def cache_root(package: PolicyPackage, engine_dir: str | Path | None = None) -> Path:
    """The engine dir: `engine_dir`, else $EDGE_ENGINE_DIR, else `<package>/engines`."""
    if engine_dir is None:
        engine_dir = os.environ.get(ENGINE_DIR_ENV) or None
    return Path(engine_dir) if engine_dir is not None else package.path / ENGINE_DIR


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
    try:
        check_embedded(path, f"FP16 graph {graph!r}")
    except PackageError as exc:
        raise BackendError(str(exc)) from None
    return path, sha


def engine_source(package: PolicyPackage, graph: str, precision: str) -> tuple[Path, str]:
    """The ONNX file an engine is built from and its sha256: the preflight's FP16 copy for FP16 engines."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp16":
        try:
            return fp16_graph(package, graph)
        except BackendError as exc:
            raise BackendError(f"FP16 engines are built only from the FP16 ONNX the preflight checked (strongly "
                               f"typed network): {exc}") from None
    return package.graph_path(graph), package.manifest.graphs[graph].sha256


DEVICE_FIELDS = ("sm_count", "memory_gib", "cuda_runtime", "cuda_driver")  # added to the key after its first version


def engine_key(package: PolicyPackage, graph: str, precision: str, tensorrt_version: str, gpu: GpuInfo) -> EngineKey:
    return EngineKey(tensorrt_version, gpu.name, gpu.compute_capability, precision,
                     engine_source(package, graph, precision)[1], builder_flags(precision, tensorrt_version),
                     gpu.sm_count, memory_class(gpu.total_memory), gpu.cuda_runtime, gpu.cuda_driver)


def memory_class(total_bytes: int) -> int:
    """Total memory rounded up to a power of two GiB: 61.4 GiB reported by a 64 GB AGX Orin -> 64."""
    return 1 << max(0, math.ceil(math.log2(max(total_bytes, 1) / (1 << 30))))


def candidate_versions(root: Path, graphs: list[str]) -> set[str]:
    """TensorRT versions with an engine on disk for every graph (read from the .json files; no TensorRT needed)."""
    versions: dict[str, set[str]] = {}
    for meta in root.glob("*/*.json") if root.is_dir() else []:
        try:
            key = read_json(meta, BackendError, "engine metadata")["key"]
            versions.setdefault(key["tensorrt"], set()).add(meta.stem)
        except (BackendError, KeyError, TypeError):
            continue
    return {v for v, found in versions.items() if set(graphs) <= found}


def engine_files(root: Path, key: EngineKey, graph: str) -> tuple[Path, Path]:
    folder = root / key.directory()
    return folder / f"{graph}.engine", folder / f"{graph}.json"


def check_engine(root: Path, key: EngineKey, graph: str, options: BuildOptions | None = None) -> EngineStatus:
    """Is there a usable engine for `graph` under `key` (built with `options`, when given)? Says why not in words."""
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
        recorded = read_json(meta, BackendError, "engine metadata")
        built = EngineKey(**recorded["key"])
    except BackendError as exc:
        return EngineStatus(graph, "stale", engine, str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        return EngineStatus(graph, "stale", engine, f"{meta} is unreadable ({brief(str(exc))})")
    if any(getattr(built, f) is None for f in DEVICE_FIELDS):
        return EngineStatus(graph, "stale", engine, f"engine {engine} has an older cache key (without the GPU's SM "
                                                    "count, memory and CUDA versions)")
    if built != key:
        diff = [f"{f.name} {getattr(built, f.name)!r} -> {getattr(key, f.name)!r}"
                for f in dataclasses.fields(key) if getattr(built, f.name) != getattr(key, f.name)]
        return EngineStatus(graph, "stale", engine, f"engine {engine} was built for different inputs: {'; '.join(diff)}")
    if sha256_file(engine) != recorded.get("engine_sha256"):
        return EngineStatus(graph, "stale", engine, f"engine {engine} changed after it was built (truncated or modified)")
    built_with = recorded.get("options")
    if options is not None and built_with != dataclasses.asdict(options):
        return EngineStatus(graph, "stale", engine, f"engine {engine} was built with options {built_with}, "
                                                    f"now {dataclasses.asdict(options)}")
    return EngineStatus(graph, "fresh", engine, f"engine {engine} matches {key.directory()}")


def write_engine(root: Path, key: EngineKey, graph: str, data: bytes, options: BuildOptions,
                 details: dict[str, Any]) -> Path:
    """Store an engine and its metadata (key, build options, engine sha256, `details` such as build seconds)."""
    engine, meta = engine_files(root, key, graph)
    write_atomic(engine, data)
    record = {"key": dataclasses.asdict(key), "options": dataclasses.asdict(options), "engine_sha256": sha256_file(engine),
              "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **details}
    write_atomic(meta, json.dumps(record, indent=2))
    return engine
