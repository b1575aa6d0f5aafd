"""The engine builder: ONNX -> serialized TensorRT engine, with progress, a timing cache and the precision rule.

`build_engines` (what `edge build` runs) checks the package's graphs against TensorRT 10.3's ONNX operator
support first, then builds each graph whose cached engine is missing, keeping fresh ones and refusing to
replace stale ones without `rebuild`. The precision rule is in engine_cache.py: FP16 engines are strongly
typed networks parsed from the preflight's FP16 ONNX, FP32 engines the FP32 ONNX, TF32 off in both, and
no `BuilderFlag.FP16` on any version. API as in NVIDIA's samples and Polygraphy (release/10.3, 10.12, 11.0):
`Builder.create_network(flags)`, `OnnxParser.parse_from_file` / `num_errors` / `get_error(i).desc()`,
`IBuilderConfig.clear_flag`, `set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)`,
`create_timing_cache` / `set_timing_cache(cache, ignore_mismatch) -> bool` / `get_timing_cache` (may be None),
`progress_monitor` (an IProgressMonitor), `Builder.build_serialized_network(network, config)` returning
IHostMemory or None. The timing cache is handled as Polygraphy does (tools/Polygraphy/polygraphy/backend/trt/
loader.py and config.py): a cache TensorRT rejects, corrupt or from another TensorRT or device, is replaced
by an empty one with one message, and the cache is saved only after the engine's bytes are safely written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from edge.errors import BackendError
from edge.runtime.backends.cuda_memory import GpuInfo, cuda_memory
from edge.runtime.backends.engine_cache import (
    ALWAYS_STRONGLY_TYPED_FROM,
    TIMING_CACHE,
    BuildOptions,
    EngineStatus,
    cache_root,
    check_engine,
    engine_key,
    engine_source,
    strongly_typed,
    version_tuple,
    write_engine,
)
from edge.runtime.backends.tensorrt import import_tensorrt, shared_logger
from edge.runtime.backends.trt_compat import check_package_graphs
from edge.runtime.files import write_atomic
from edge.runtime.package import PolicyPackage

Report = Callable[[str], None]


def network_flags(trt: ModuleType, typed: bool) -> int:
    """Creation flags: kSTRONGLY_TYPED on 10.x when typed; nothing on 11.x, which is always strongly typed."""
    if not typed or version_tuple(trt.__version__) >= ALWAYS_STRONGLY_TYPED_FROM:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _progress_monitor(trt: ModuleType, report: Report) -> Any:
    """A trt.IProgressMonitor printing top-level build phases and at most one step line every 5 s."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}
            self._last = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            if parent_phase is None:
                report(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last > 5.0:
                self._last = now
                report(f"  {phase_name}: {step + 1}/{self._steps.get(phase_name, '?')}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._steps.pop(phase_name, None)

    return Monitor()


@dataclass
class BuiltEngine:
    """A build's result: the serialized engine, and the timing cache to save once the engine is on disk (None
    when TensorRT gave none back)."""

    engine: bytes
    timing_cache: bytes | None


def load_timing_cache(trt: ModuleType, config: Any, path: Path, report: Report) -> None:
    """Give `config` the timing cache saved at `path`; one TensorRT rejects (create_timing_cache raises or returns
    None for a corrupt file, set_timing_cache returns False for another TensorRT's or device's) is replaced by an
    empty cache with one message. Without any cache the build still runs, only slower."""
    data = path.read_bytes() if path.is_file() else b""
    if data:
        try:
            cache = config.create_timing_cache(data)
            problem = ("unreadable" if cache is None else
                       "" if config.set_timing_cache(cache, ignore_mismatch=False) else
                       "made by another TensorRT version or device")
        except Exception as exc:  # the bindings raise their own types for bytes they cannot read
            problem = f"unreadable ({type(exc).__name__}: {exc})"
        if not problem:
            return
        report(f"  timing cache {path} is {problem}: starting from an empty one, replaced after the build")
    empty = config.create_timing_cache(b"")
    if empty is None or not config.set_timing_cache(empty, ignore_mismatch=False):
        report("  TensorRT refused an empty timing cache: building without one")


class EngineBuilder:
    """Builds serialized engines with one TensorRT module; `build` is one ONNX file -> engine bytes."""

    def __init__(self, trt: ModuleType, report: Report = print) -> None:
        self._trt = trt
        self._report = report

    def build(self, onnx_path: Path, precision: str, timing_cache: Path, options: BuildOptions) -> BuiltEngine:
        """Parse `onnx_path` and build under the precision rule, starting from the timing cache at `timing_cache`
        (not written here); BackendError on failure."""
        trt = self._trt
        logger = shared_logger(trt)
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt, strongly_typed(precision, trt.__version__)))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = []
            for i in range(parser.num_errors):
                error = parser.get_error(i)
                errors.append(f"node {error.node()} ({error.node_name()}): {error.desc()}")
            raise BackendError(f"TensorRT could not parse {onnx_path}: {'; '.join(errors) or 'no error recorded'}")
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if any(int(d) < 0 for d in tensor.shape):
                raise BackendError(f"{onnx_path}: input {tensor.name!r} has a dynamic shape {tuple(tensor.shape)}; "
                                   "this runtime builds static-shape exports only")
        config = builder.create_builder_config()
        config.clear_flag(trt.BuilderFlag.TF32)
        if options.workspace_mb:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        load_timing_cache(trt, config, timing_cache, self._report)
        monitor = _progress_monitor(trt, self._report)
        config.progress_monitor = monitor
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see TensorRT's log above)")
        cache = config.get_timing_cache()
        if cache is None:
            self._report(f"  TensorRT returned no timing cache; {timing_cache} is left as it was")
        return BuiltEngine(bytes(serialized), bytes(cache.serialize()) if cache is not None else None)


def engine_statuses(package: PolicyPackage, precision: str, tensorrt_version: str, gpu: GpuInfo,
                    engine_dir: str | Path | None = None,
                    options: BuildOptions | None = None) -> dict[str, EngineStatus]:
    """Engine status of every graph of `package` for this TensorRT, GPU and precision."""
    root = cache_root(package, engine_dir)
    return {g: check_engine(root, engine_key(package, g, precision, tensorrt_version, gpu), g, options)
            for g in package.manifest.graphs}


def build_engines(package: PolicyPackage, precision: str, rebuild: bool = False, engine_dir: str | Path | None = None,
                  report: Report = print, options: BuildOptions = BuildOptions()) -> dict[str, Path]:
    """Build every graph's engine for this device; fresh ones are kept, stale ones need `rebuild`."""
    check_package_graphs(package, precision)  # before TensorRT or CUDA is touched
    trt = import_tensorrt()
    memory = cuda_memory()
    gpu = memory.gpu()
    root = cache_root(package, engine_dir)
    statuses = engine_statuses(package, precision, trt.__version__, gpu, engine_dir, options)
    stale = [s for s in statuses.values() if s.state == "stale"]
    if stale and not rebuild:
        raise BackendError("; ".join(s.reason for s in stale) + ". Stale engines are never reused or replaced "
                           "silently: pass --rebuild to build them again")
    builder = EngineBuilder(trt, report)
    built = {}
    for i, (graph, status) in enumerate(statuses.items(), 1):
        key = engine_key(package, graph, precision, trt.__version__, gpu)
        if status.state == "fresh" and not rebuild:
            report(f"[{i}/{len(statuses)}] {graph}: up to date ({status.path})")
            built[graph] = status.path
            continue
        onnx_path = engine_source(package, graph, precision)[0]
        report(f"[{i}/{len(statuses)}] {graph}: {'re' if status.state != 'missing' else ''}building from "
               f"{onnx_path.relative_to(package.path)} ({precision.upper()}, {key.builder_flags}, TensorRT "
               f"{trt.__version__}, {gpu.name}); this can take minutes")
        t0 = time.monotonic()
        timing_cache = root / key.directory() / TIMING_CACHE
        with memory.activate():
            result = builder.build(onnx_path, precision, timing_cache, options)
        seconds = time.monotonic() - t0
        built[graph] = write_engine(root, key, graph, result.engine, options,
                                    {"build_seconds": round(seconds, 1),
                                     "onnx": str(onnx_path.relative_to(package.path))})
        if result.timing_cache is not None:  # only once the engine and its metadata are on disk
            write_atomic(timing_cache, result.timing_cache)
        report(f"[{i}/{len(statuses)}] {graph}: built in {seconds:.0f} s -> {built[graph]}")
    return built
